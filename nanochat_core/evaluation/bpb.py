"""Bits per byte: the tokenizer-independent validation metric (nanochat's evaluate_bpb).

bpb = sum of per-token losses (nats) over targets whose token has bytes > 0, divided by
ln(2) * the sum of those bytes. Special tokens (0 bytes) and ignored targets (-1) count for
nothing, so models with different vocabularies compare fairly. Summed across ranks.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch
import torch.distributed as dist


@torch.no_grad()
def evaluate_bpb(model, batches: Iterator, steps: int, token_bytes: torch.Tensor) -> float:
    """bpb over `steps` batches from `batches` (tuples whose first two items are inputs, targets)."""
    device = token_bytes.device
    total_nats = torch.zeros((), dtype=torch.float64, device=device)
    total_bytes = torch.zeros((), dtype=torch.int64, device=device)
    for _ in range(steps):
        inputs, targets = next(batches)[:2]
        loss = model(inputs, targets, loss_reduction="none").reshape(-1)
        targets = targets.reshape(-1)
        valid = targets >= 0
        num_bytes = torch.where(valid, token_bytes[targets.clamp(min=0)], 0)
        counted = num_bytes > 0
        total_nats += (loss.double() * counted).sum()
        total_bytes += num_bytes.sum()
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(total_nats)
        dist.all_reduce(total_bytes)
    if total_bytes.item() == 0:
        return float("inf")
    return total_nats.item() / (math.log(2) * total_bytes.item())
