"""Measure a device's achievable matmul throughput: the peak that MFU is quoted against when --peak-flops is
not given (on CPU there is no datasheet number worth trusting)."""
from __future__ import annotations

import time

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_matmul_peak(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                        seconds: float = 1.0, size: int | None = None) -> float:
    """Best FLOP/s over repeated square matmuls for about `seconds` (2*n^3 FLOPs each).

    n = 1536 on CPU (big enough to saturate the cores, small enough to repeat many times a second),
    8192 on GPUs. The best short window is reported, so a noisy neighbour lowers it less."""
    device = torch.device(device)
    n = size or (8192 if device.type == "cuda" else 1536)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    c = torch.empty(n, n, device=device, dtype=dtype)
    torch.matmul(a, b, out=c)  # warm-up: thread pools, kernels, caches
    _sync(device)
    flops_per = 2.0 * n ** 3
    best = 0.0
    deadline = time.perf_counter() + seconds
    while True:
        reps = 0
        t0 = time.perf_counter()
        while reps < 1 or time.perf_counter() - t0 < min(0.1, seconds / 5):
            torch.matmul(a, b, out=c)
            reps += 1
            if device.type == "cuda":
                _sync(device)
        _sync(device)
        dt = time.perf_counter() - t0
        best = max(best, reps * flops_per / dt)
        if time.perf_counter() >= deadline:
            return best
