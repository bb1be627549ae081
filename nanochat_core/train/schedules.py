"""Learning-rate, momentum and weight-decay schedules, exactly as nanochat computes them.

Pure functions of the step so a resumed run recomputes the same values (nothing to checkpoint).
"""
from __future__ import annotations

import math


def base_lr_multiplier(it: int, num_iterations: int, warmup_steps: int = 40,
                       warmdown_ratio: float = 0.65, final_lr_frac: float = 0.05,
                       warmup_ratio: float | None = None) -> float:
    """base_train's LR multiplier at step `it` of `num_iterations`.

    Linear warmup (it+1)/warmup_steps, flat at 1.0 until the last W = round(warmdown_ratio*N)
    steps, then linear down to final_lr_frac. `warmup_ratio`, when given, replaces warmup_steps
    by round(warmup_ratio*N) (our addition: the seed documents the flag for base_train too).
    """
    n = num_iterations
    if warmup_ratio is not None:
        warmup_steps = round(warmup_ratio * n)
    warmdown_steps = round(warmdown_ratio * n)
    if it < warmup_steps:
        return (it + 1) / warmup_steps
    if it <= n - warmdown_steps:
        return 1.0
    progress = (n - it) / warmdown_steps
    return progress + (1 - progress) * final_lr_frac


def muon_momentum(it: int, start: float = 0.85, end: float = 0.97, ramp_steps: int = 400) -> float:
    """Muon momentum ramps linearly from `start` to `end` over the first `ramp_steps` steps."""
    frac = min(it / ramp_steps, 1.0)
    return (1 - frac) * start + frac * end


def sft_muon_momentum(it: int) -> float:
    """chat_sft's ramp: 0.85 -> 0.95 over 300 steps."""
    return muon_momentum(it, start=0.85, end=0.95, ramp_steps=300)


def muon_weight_decay(it: int, num_iterations: int, weight_decay: float) -> float:
    """Muon weight decay follows a half cosine from `weight_decay` at step 0 to zero at the end."""
    return weight_decay * 0.5 * (1 + math.cos(math.pi * it / num_iterations))


def sft_lr_multiplier(progress: float, warmup_ratio: float = 0.0, warmdown_ratio: float = 0.5,
                      final_lr_frac: float = 0.0) -> float:
    """chat_sft's multiplier as a function of progress p in [0, 1] (the SFT loop knows p, not N).

    Warmup p/warmup_ratio (none when 0), flat until 1 - warmdown_ratio, then linear to
    final_lr_frac. `--init-lr-frac` scales the base LRs once at set-up, not here.
    """
    if warmup_ratio > 0 and progress < warmup_ratio:
        return progress / warmup_ratio
    if progress <= 1.0 - warmdown_ratio:
        return 1.0
    decay = (progress - (1.0 - warmdown_ratio)) / warmdown_ratio
    return (1 - decay) * 1.0 + decay * final_lr_frac
