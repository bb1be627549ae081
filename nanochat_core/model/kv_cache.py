"""Key/value cache for generation: prefill once, then decode one token at a time.

Layout (num_layers, B, n_kv_head, T, head_dim), the layout SDPA wants. Keys are stored after rotary and QK norm,
so a cached key never needs recomputing. GPT.forward inserts each layer's new k, v and calls advance(T) once at the end.
"""
from __future__ import annotations

import torch


class KVCache:
    def __init__(self, batch_size: int, num_heads: int, seq_len: int, head_dim: int, num_layers: int,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        self.batch_size, self.num_heads, self.head_dim, self.num_layers = batch_size, num_heads, head_dim, num_layers
        shape = (num_layers, batch_size, num_heads, seq_len, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.pos = 0

    @classmethod
    def for_model(cls, model, batch_size: int, seq_len: int) -> "KVCache":
        c = model.config
        dev = model.get_device()
        return cls(batch_size, c.n_kv_head, seq_len, c.head_dim, c.n_layer, dev, model.resolve_compute_dtype(dev))

    @property
    def capacity(self) -> int:
        return self.k.size(3)

    def get_pos(self) -> int:
        return self.pos

    def reset(self) -> None:
        self.pos = 0

    def _grow(self, need: int) -> None:
        # Generation past the planned length keeps working: double the time axis instead of failing.
        new_len = max(need, 2 * self.capacity)
        pad = list(self.k.shape)
        pad[3] = new_len - self.capacity
        self.k = torch.cat([self.k, self.k.new_zeros(pad)], dim=3)
        self.v = torch.cat([self.v, self.v.new_zeros(pad)], dim=3)

    def insert_kv(self, layer_idx: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, H, T, D) at the current position; return all keys/values so far for this layer."""
        t0, t1 = self.pos, self.pos + k.size(2)
        if t1 > self.capacity:
            self._grow(t1)
        self.k[layer_idx, :, :, t0:t1] = k
        self.v[layer_idx, :, :, t0:t1] = v
        return self.k[layer_idx, :, :, :t1], self.v[layer_idx, :, :, :t1]

    def advance(self, T: int) -> None:
        self.pos += T

    def expand_batch(self, batch_size: int) -> "KVCache":
        """A new cache with this (batch 1) cache's contents replicated batch_size times: prefill a prompt once,
        then sample several continuations of it."""
        if self.batch_size != 1:
            raise ValueError(f"expand_batch needs a batch-1 cache, this one has batch {self.batch_size}")
        out = KVCache.__new__(KVCache)
        out.batch_size, out.num_heads, out.head_dim = batch_size, self.num_heads, self.head_dim
        out.num_layers = self.num_layers
        out.k = self.k.expand(-1, batch_size, -1, -1, -1).contiguous()
        out.v = self.v.expand(-1, batch_size, -1, -1, -1).contiguous()
        out.pos = self.pos
        return out
