"""The GPT: nanochat's architecture with nanochat's state-dict names, in plain PyTorch.

Pre-norm transformer; RMSNorm without weights; no biases; rotary (base 100000, half-split); QK norm then *1.15;
sliding-window attention tiled by a pattern string (last layer always full); value embeddings mixed into v on
alternating layers (always the last); relu^2 MLP; per-layer residual and x0 scalars; untied lm_head; logits
softcapped at 15 in fp32. As nanochat's nanochat/gpt.py. Master weights stay fp32; matmuls run in the compute dtype.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from nanochat_core.common import device as devmod
from nanochat_core.model import attention as attn_backends
from nanochat_core.model.fused_ops import relu_squared, rms_norm, rotary
from nanochat_core.model.softcap_loss import softcap_cross_entropy

ROTARY_BASE = 100000
VE_GATE_CHANNELS = 12  # the value-embedding gate looks at the first 12 channels of the layer input
QK_SCALE = 1.15  # q and k are each multiplied by this after their RMSNorm
SOFTCAP = 15.0
VOCAB_MULTIPLE = 64  # embedding tables are padded to this so matmuls stay aligned


@dataclass
class GPTConfig:
    # Field names are nanochat's meta["model_config"] keys, so GPTConfig(**meta["model_config"]) works.
    sequence_len: int = 2048
    vocab_size: int = 32768
    n_layer: int = 12
    n_head: int = 6
    n_kv_head: int = 6
    n_embd: int = 768
    window_pattern: str = "SSSL"

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def padded_vocab_size(self) -> int:
        return math.ceil(self.vocab_size / VOCAB_MULTIPLE) * VOCAB_MULTIPLE

    def validate(self) -> None:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        if self.n_head % self.n_kv_head:
            raise ValueError(f"n_head {self.n_head} is not a multiple of n_kv_head {self.n_kv_head}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim {self.head_dim} must be even for rotary embeddings")
        if not self.window_pattern or set(self.window_pattern.upper()) - {"S", "L"}:
            raise ValueError(f"window_pattern must be a non-empty string of S and L, got {self.window_pattern!r}")


def has_value_embedding(layer_idx: int, n_layer: int) -> bool:
    """Value embeddings live on alternating layers, always including the last one."""
    return layer_idx % 2 == (n_layer - 1) % 2


def short_window(sequence_len: int) -> int:
    # S = a third of the context rounded up to a multiple of 128 (768 at 2048).
    return math.ceil(sequence_len / 3 / 128) * 128


def compute_window_sizes(config: GPTConfig) -> list[int]:
    """Left window (how many earlier positions a query may see) per layer; the last layer is always full."""
    pattern = config.window_pattern.upper()
    long_w, short_w = config.sequence_len, short_window(config.sequence_len)
    sizes = [long_w if pattern[i % len(pattern)] == "L" else short_w for i in range(config.n_layer)]
    sizes[-1] = long_w
    return sizes


def norm(x: torch.Tensor) -> torch.Tensor:
    return rms_norm(x)  # F.rms_norm's values; a 4-op backward in eager fp32 training (fused_ops.py)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Half-split rotary on (B, T, H, D); nanochat's sign convention (kept for checkpoint parity)."""
    return rotary(x, cos.to(x.dtype), sin.to(x.dtype))  # a 5-op backward in eager fp32 training (fused_ops.py)


class Linear(nn.Linear):
    """A bias-free Linear whose fp32 master weight is cast to the activation (compute) dtype on the fly."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__(in_features, out_features, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight.to(x.dtype))


class Embedding(nn.Embedding):
    """nn.Embedding that leaves a meta-device weight uninitialised: GPT.init_weights sets every weight anyway,
    and normal_ on a meta tensor goes through torch._refs, whose first call imports torch._dynamo (1.2 s of
    each process's start on CPU) to produce no values. On a real device it initialises as nn.Embedding,
    drawing the same random numbers."""

    def reset_parameters(self) -> None:
        if not self.weight.is_meta:
            super().reset_parameters()


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, config.head_dim
        d = config.n_embd
        self.c_q = Linear(d, self.n_head * self.head_dim)
        self.c_k = Linear(d, self.n_kv_head * self.head_dim)
        self.c_v = Linear(d, self.n_kv_head * self.head_dim)
        self.c_proj = Linear(d, d)
        has_ve = has_value_embedding(layer_idx, config.n_layer)
        self.ve_gate = Linear(VE_GATE_CHANNELS, self.n_kv_head) if has_ve else None

    def forward(self, x, ve, cos, sin, window: int, kv_cache=None, attention=None):
        B, T, _ = x.shape
        q = self.c_q(x).view(B, T, self.n_head, self.head_dim)
        k = self.c_k(x).view(B, T, self.n_kv_head, self.head_dim)
        v = self.c_v(x).view(B, T, self.n_kv_head, self.head_dim)
        if ve is not None:
            gate = 3 * torch.sigmoid(self.ve_gate(x[..., :VE_GATE_CHANNELS]))  # (B, T, n_kv_head)
            v = v + gate.unsqueeze(-1) * ve.view(B, T, self.n_kv_head, self.head_dim)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        q, k = norm(q) * QK_SCALE, norm(k) * QK_SCALE
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H, T, D) for SDPA
        if kv_cache is not None:
            k, v = kv_cache.insert_kv(self.layer_idx, k, v)
        backend, masks = attention  # (backend name, MaskCache): see model/attention.py
        y = attn_backends.attend(q, k, v, window, backend, masks)
        y = y.transpose(1, 2).contiguous().view(B, T, -1)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = Linear(4 * config.n_embd, config.n_embd)

    def forward(self, x):
        return self.c_proj(relu_squared(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, config: GPTConfig, layer_idx: int):
        super().__init__()
        self.attn = CausalSelfAttention(config, layer_idx)
        self.mlp = MLP(config)

    def forward(self, x, ve, cos, sin, window, kv_cache, attention):
        x = x + self.attn(norm(x), ve, cos, sin, window, kv_cache, attention)
        return x + self.mlp(norm(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig, compute_dtype: torch.dtype | None = None):
        super().__init__()
        config.validate()
        self.config = config
        V, d = config.padded_vocab_size, config.n_embd
        kv_dim = config.n_kv_head * config.head_dim
        self.transformer = nn.ModuleDict({
            "wte": Embedding(V, d),
            "h": nn.ModuleList([Block(config, i) for i in range(config.n_layer)]),
        })
        self.lm_head = Linear(d, V)
        self.resid_lambdas = nn.Parameter(torch.ones(config.n_layer))
        self.x0_lambdas = nn.Parameter(torch.full((config.n_layer,), 0.1))
        self.value_embeds = nn.ModuleDict({
            str(i): Embedding(V, kv_dim) for i in range(config.n_layer) if has_value_embedding(i, config.n_layer)
        })
        self.window_sizes = compute_window_sizes(config)  # plain list: tests/tools may override it
        # None = resolve per forward from the input's device (device.compute_dtype: fp32 on CPU, bf16 on CUDA SM80+).
        self.compute_dtype = compute_dtype
        # Rotary tables: non-persistent buffers (never saved), precomputed for sequence_len and extended on
        # demand for longer inputs. Recomputed by init_weights() and load_state_dict(), since to_empty_on() leaves
        # them uninitialised. Attention masks (dense for SDPA, block masks for flex) are a cache keyed by shape;
        # the attention backend is chosen by set_attention, or automatically at the first forward.
        cos, sin = self._rotary_tables(config.sequence_len, self.transformer.wte.weight.device)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.attention_masks = attn_backends.MaskCache()
        self.attention: attn_backends.AttentionChoice | None = None

    # ---------------------------------------------------------------- init
    def to_empty_on(self, device) -> "GPT":
        """Module.to_empty for a model built on the meta device: uninitialised storage on `device`. Not
        to_empty itself: its empty_like of a meta tensor runs through torch._refs and imports torch.fx's
        symbolic shapes (0.4 s of each process's start on CPU); empty by shape needs nothing. The values
        come from init_weights() or a checkpoint's state dict."""
        return self._apply(lambda t: torch.empty(t.shape, dtype=t.dtype, device=device))

    @torch.no_grad()
    def init_weights(self) -> None:
        d = self.config.n_embd
        s = (3 / d) ** 0.5  # uniform(-s, s) has std 1/sqrt(d)
        nn.init.normal_(self.transformer.wte.weight, mean=0.0, std=0.8)
        nn.init.normal_(self.lm_head.weight, mean=0.0, std=0.001)
        for block in self.transformer.h:
            for lin in (block.attn.c_q, block.attn.c_k, block.attn.c_v):
                nn.init.uniform_(lin.weight, -s, s)
            nn.init.zeros_(block.attn.c_proj.weight)  # output projections start at zero: each block starts as identity
            nn.init.uniform_(block.mlp.c_fc.weight, -0.5 * s, 0.5 * s)
            nn.init.zeros_(block.mlp.c_proj.weight)
            if block.attn.ve_gate is not None:
                nn.init.zeros_(block.attn.ve_gate.weight)  # gate starts at 3*sigmoid(0) = 1.5 for every head
        for ve in self.value_embeds.values():
            nn.init.uniform_(ve.weight, -s, s)
        self.resid_lambdas.fill_(1.0)
        self.x0_lambdas.fill_(0.1)
        self.reset_caches()

    def get_device(self) -> torch.device:
        return self.transformer.wte.weight.device

    def resolve_compute_dtype(self, device: torch.device | None = None) -> torch.dtype:
        if self.compute_dtype is not None:
            return self.compute_dtype
        return devmod.compute_dtype((device or self.get_device()).type)

    # ---------------------------------------------------------------- caches
    def _rotary_tables(self, length: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        hd = self.config.head_dim
        if torch.device(device).type == "meta":  # shapes only: arange, clone... on meta run through torch._refs (above)
            shape = (1, length, 1, hd // 2)
            return (torch.empty(shape, dtype=torch.float32, device=device),
                    torch.empty(shape, dtype=torch.float32, device=device))
        inv_freq = 1.0 / (ROTARY_BASE ** (torch.arange(0, hd, 2, dtype=torch.float32, device=device) / hd))
        freqs = torch.outer(torch.arange(length, dtype=torch.float32, device=device), inv_freq)
        return freqs.cos()[None, :, None, :], freqs.sin()[None, :, None, :]

    def reset_caches(self, length: int | None = None) -> None:
        """(Re)compute the rotary tables (fp32) on the model's device and drop cached masks.
        Built outside inference mode, so tables extended during generation still work in training later."""
        length = max(length or 0, self.config.sequence_len)
        with torch.inference_mode(False), torch.no_grad():
            self.cos, self.sin = self._rotary_tables(length, self.get_device())
        self.attention_masks.clear()

    def rotary(self, t0: int, T: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin of shape (1, T, 1, head_dim/2) for positions t0..t0+T; extended (doubled) for long prompts
        instead of failing as nanochat does past 10x its context."""
        if t0 + T > self.cos.size(1):
            self.reset_caches(max(t0 + T, 2 * self.cos.size(1)))
        return self.cos[:, t0:t0 + T], self.sin[:, t0:t0 + T]

    def set_attention(self, choice: str = "auto", training: bool = True) -> attn_backends.AttentionChoice:
        """Choose the attention backend (auto | flex | fa3 | sdpa | reference) for this model's device and
        compute dtype; returns the choice with its reason (for the log and the checkpoint meta). Call it after
        the model is on its device and before torch.compile: the training shape's block masks are built here."""
        dev = self.get_device()
        windowed = any(w < self.config.sequence_len - 1 for w in self.window_sizes)
        self.attention = attn_backends.resolve_backend(choice, dev, self.resolve_compute_dtype(dev), windowed,
                                                       training=training)
        if self.attention.backend == "flex":
            for w in sorted(set(self.window_sizes)):
                if w < self.config.sequence_len - 1:
                    self.attention_masks.block(self.config.sequence_len, w, dev)
        return self.attention

    # ---------------------------------------------------------------- forward
    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, kv_cache=None,
                loss_reduction: str = "mean"):
        B, T = idx.shape
        h = self.hidden_states(idx, kv_cache)
        if targets is not None and loss_reduction != "none" and self._chunked_loss_applies():
            # The same loss without the (tokens x vocab) logits in memory: see softcap_loss.py
            return softcap_cross_entropy(h.reshape(B * T, -1), self.lm_head.weight, targets.reshape(-1),
                                         self.config.vocab_size, SOFTCAP, loss_reduction)
        logits = self.logits(h)
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1,
                               reduction=loss_reduction)
        if loss_reduction == "none":
            loss = loss.view(B, T)
        return loss

    def _chunked_loss_applies(self) -> bool:
        """Eager runs with our own lm_head: torch.compile fuses the plain head itself, and an fp8 lm_head
        (another module type) must keep its own matmul."""
        return type(self.lm_head) is Linear and not torch.compiler.is_compiling()

    def hidden_states(self, idx: torch.Tensor, kv_cache=None) -> torch.Tensor:
        """The final normed residual stream (B, T, n_embd): what lm_head reads. Scoring that needs the
        logits of a few positions only (CORE spans) applies `logits` to those, not to every position."""
        T = idx.size(1)
        dev = idx.device
        dtype = self.resolve_compute_dtype(dev)
        t0 = kv_cache.get_pos() if kv_cache is not None else 0
        cos, sin = self.rotary(t0, T)
        if self.attention is None:  # a model nobody configured (eval, chat): the automatic choice, inference
            self.set_attention("auto", training=False)
        backend = self.attention.backend
        if backend == "flex" and (kv_cache is not None or T != self.config.sequence_len):
            # flex is compiled per shape: only the training shape (its block masks built by set_attention) goes
            # through it. Prompts and RL rows come in every length, and a kernel compiled per length would cost
            # more than it saves: they take SDPA (is_causal, or a mask where a window cuts them); decode is mask-free.
            backend = "sdpa"
        attention = (backend, self.attention_masks)

        x = norm(self.transformer.wte(idx).to(dtype))
        x0 = x
        for i, block in enumerate(self.transformer.h):
            x = self.resid_lambdas[i].to(dtype) * x + self.x0_lambdas[i].to(dtype) * x0
            ve = self.value_embeds[str(i)](idx).to(dtype) if str(i) in self.value_embeds else None
            x = block(x, ve, cos, sin, self.window_sizes[i], kv_cache, attention)
        if kv_cache is not None:
            kv_cache.advance(T)
        return norm(x)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """fp32 logits over the real vocabulary, softcapped, for hidden states of any leading shape."""
        logits = self.lm_head(h)[..., : self.config.vocab_size].float()
        # softcap; the in-place divide saves one vocab-sized buffer (the matmul's backward doesn't need its output)
        return torch.tanh(logits.div_(SOFTCAP)) * SOFTCAP

    # ---------------------------------------------------------------- accounting
    def num_scaling_params(self) -> dict[str, int]:
        counts = {
            "wte": self.transformer.wte.weight.numel(),
            "value_embeds": sum(e.weight.numel() for e in self.value_embeds.values()),
            "lm_head": self.lm_head.weight.numel(),
            "transformer_matrices": sum(p.numel() for p in self.transformer.h.parameters()),
            "scalars": self.resid_lambdas.numel() + self.x0_lambdas.numel(),
        }
        counts["total"] = sum(counts.values())
        assert counts["total"] == sum(p.numel() for p in self.parameters())
        return counts

    def estimate_flops(self) -> float:
        """FLOPs per token (fwd+bwd): 6 x matmul params (lm_head included, embeddings and scalars excluded)
        plus 12 * n_head * head_dim * min(window, seq_len) per layer for attention."""
        c = self.num_scaling_params()
        matmul_params = c["transformer_matrices"] + c["lm_head"]
        h, hd, t = self.config.n_head, self.config.head_dim, self.config.sequence_len
        attn = sum(12 * h * hd * min(w, t) for w in self.window_sizes)
        return float(6 * matmul_params + attn)

    # ---------------------------------------------------------------- optimizer
    def setup_optimizer(self, unembedding_lr: float = 0.008, embedding_lr: float = 0.3, matrix_lr: float = 0.02,
                        weight_decay: float = 0.0, scalar_lr: float = 0.5, distributed: bool = False):
        """MuonAdamW over nanochat's groups (nanochat/gpt.py's setup_optimizer). LRs given here already carry the batch-size scale;
        the AdamW groups additionally get (model_dim/768)^-0.5. Every group records "initial_lr"."""
        from nanochat_core.model.optim import DistMuonAdamW, MuonAdamW

        s = (self.config.n_embd / 768) ** -0.5

        def adam(params, lr, betas, wd):
            return dict(kind="adamw", params=list(params), lr=lr, betas=betas, eps=1e-10, weight_decay=wd)

        groups = [
            adam(self.lm_head.parameters(), unembedding_lr * s, (0.8, 0.96), 0.01),
            adam(self.transformer.wte.parameters(), embedding_lr * s, (0.8, 0.995), 0.001),
            adam(self.value_embeds.parameters(), embedding_lr * s * 0.5, (0.8, 0.995), 0.01),
            adam([self.resid_lambdas], scalar_lr * 0.01, (0.8, 0.95), 0.05),
            adam([self.x0_lambdas], scalar_lr, (0.96, 0.95), 0.0),
        ]
        groups = [g for g in groups if g["params"]]
        matrices = list(self.transformer.h.parameters())
        for shape in sorted({tuple(p.shape) for p in matrices}):
            groups.append(dict(kind="muon", params=[p for p in matrices if tuple(p.shape) == shape], lr=matrix_lr,
                               momentum=0.95, ns_steps=5, beta2=0.9, weight_decay=weight_decay))
        n_opt = sum(len(g["params"]) for g in groups)
        assert n_opt == len(list(self.parameters())), "every parameter must be in exactly one optimizer group"
        cls = DistMuonAdamW if distributed else MuonAdamW
        return cls(groups, ortho_dtype=self.resolve_compute_dtype())

    # ---------------------------------------------------------------- loading
    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False, source: str | None = None):
        """Strict by default; strips torch.compile's `_orig_mod.` prefix; shape mismatches name the key;
        tensors are cast to our (fp32 master) dtypes, so a bf16 nanochat checkpoint loads too."""
        sd = clean_state_dict(state_dict)
        check_state_dict(self, sd, strict=strict, source=source)
        own = self.state_dict()
        sd = {k: (v.to(own[k].dtype) if k in own and v.is_floating_point() else v) for k, v in sd.items()}
        result = super().load_state_dict(sd, strict=strict, assign=assign)
        self.reset_caches()
        return result


class StateDictMismatchError(ValueError):
    pass


def clean_state_dict(state_dict: dict) -> dict:
    """Drop torch.compile's `_orig_mod.` prefix from every key (nanochat saves compiled models' dicts)."""
    prefix = "_orig_mod."
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def check_state_dict(model: nn.Module, state_dict: dict, strict: bool = True, source: str | None = None) -> None:
    """Raise StateDictMismatchError naming the key, expected and actual shapes (and the file, when given)."""
    where = f" in {source}" if source else ""
    own = model.state_dict()
    problems = []
    for k, v in state_dict.items():
        if k in own and tuple(own[k].shape) != tuple(v.shape):
            problems.append(f"{k}: expected shape {tuple(own[k].shape)} from the model config, got {tuple(v.shape)}")
    if strict:
        missing = sorted(set(own) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(own))
        if missing:
            problems.append(f"missing keys: {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
        if unexpected:
            problems.append(f"unexpected keys: {', '.join(unexpected[:10])}{' ...' if len(unexpected) > 10 else ''}")
    if problems:
        cfg = getattr(model, "config", None)
        raise StateDictMismatchError(
            f"checkpoint{where} does not match the model config {cfg}:\n  " + "\n  ".join(problems))
