"""Per-device batch size and gradient accumulation.

total_batch_size tokens per optimizer step = device_batch_size * seq_len * world_size * grad_accum,
and grad_accum must come out whole (nanochat asserts it; we say which flags to change).
`--device-batch-size auto` picks the largest power of two <= 32 that divides the step and fits:
on CUDA by a trial forward/backward, elsewhere by a memory estimate against available RAM.
"""
from __future__ import annotations

import os

import torch

MAX_AUTO_BATCH = 32


def grad_accum_steps(total_batch_size: int, device_batch_size: int, seq_len: int, world_size: int) -> int:
    tokens_per_micro_step = device_batch_size * seq_len * world_size
    if total_batch_size <= 0 or total_batch_size % tokens_per_micro_step:
        raise ValueError(
            f"--total-batch-size {total_batch_size} is not a multiple of --device-batch-size {device_batch_size} "
            f"x --max-seq-len {seq_len} x {world_size} process(es) = {tokens_per_micro_step} tokens per micro-step; "
            "change --total-batch-size or --device-batch-size")
    return total_batch_size // tokens_per_micro_step


def candidate_batch_sizes(total_batch_size: int, seq_len: int, world_size: int) -> list[int]:
    """Powers of two <= 32, largest first, that split one optimizer step into whole micro-steps."""
    rows, rest = divmod(total_batch_size, seq_len * world_size)
    if rest or rows == 0:
        raise ValueError(f"--total-batch-size {total_batch_size} is not a multiple of --max-seq-len {seq_len} "
                         f"x {world_size} process(es): no --device-batch-size can divide it")
    return [b for b in (32, 16, 8, 4, 2, 1) if b <= MAX_AUTO_BATCH and rows % b == 0]


def _available_ram_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def estimated_bytes(model, batch: int, seq_len: int) -> int:
    """Rough fp32 training footprint: weights, grads, two optimizer buffers, saved activations.

    Per token and layer ~20 model-dim activations plus the attention matrix (the masked sliding
    windows take torch's math path, which materializes T x T per head); logits ~3 vocab-wide copies.
    """
    cfg = model.config
    params = sum(p.numel() for p in model.parameters())
    per_token = cfg.n_layer * (20 * cfg.n_embd + 2 * cfg.n_head * seq_len) + 3 * cfg.vocab_size
    return 4 * (4 * params + batch * seq_len * per_token)


def _fits_cuda(model, batch: int, seq_len: int, device) -> bool:
    """Trial forward/backward; keep room for the optimizer state it does not allocate yet."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    try:
        idx = torch.zeros(batch, seq_len, dtype=torch.long, device=device)
        model(idx, idx).backward()
        peak = torch.cuda.max_memory_allocated(device)
    except torch.cuda.OutOfMemoryError:
        return False
    finally:
        model.zero_grad(set_to_none=True)
        torch.cuda.empty_cache()
    optimizer_bytes = 2 * 4 * sum(p.numel() for p in model.parameters())
    total = torch.cuda.get_device_properties(device).total_memory
    return peak + optimizer_bytes <= 0.95 * total


def auto_device_batch_size(model, total_batch_size: int, seq_len: int, world_size: int, device) -> tuple[int, str]:
    """(chosen batch size, how it was decided). All ranks must then agree (see the trainer)."""
    candidates = candidate_batch_sizes(total_batch_size, seq_len, world_size)
    if device.type == "cuda":
        for b in candidates:
            if _fits_cuda(model, b, seq_len, device):
                return b, "largest that passed a trial forward/backward"
        raise RuntimeError(f"--device-batch-size auto: not even 1 row of {seq_len} tokens fits on {device}")
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    budget = 0.8 * _available_ram_bytes() / local_world
    for b in candidates:
        if estimated_bytes(model, b, seq_len) <= budget:
            return b, f"largest whose estimated footprint fits 80% of available RAM ({budget / 2**30:.1f} GiB)"
    return candidates[-1], "smallest candidate (the memory estimate exceeds available RAM; expect swapping)"
