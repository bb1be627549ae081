"""Measure a device's achievable matmul throughput: the peak that MFU is quoted against when
--peak-flops is not given and no datasheet number applies (on CPU there is none worth trusting).

One short probe swings with whatever else the machine is doing (9.2e10 to 1.8e11 FLOP/s between
the demo's cells on one machine), which made the cells' MFU incomparable. So the peak is the best
of several probes, measured once per machine, device, dtype and thread count, written with that
identity to $NANOCHAT_BASE_DIR/peak_flops/<key>.json and reused by every later run that matches.
Delete the file to measure again.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from pathlib import Path

import torch

PROBES = 5  # best of this many
PROBE_SECONDS = 0.3  # each; with the pauses between them about two seconds, once per machine
PAUSE_SECONDS = 0.1  # lets a neighbour's burst pass instead of landing in every probe
CACHE_FOLDER = "peak_flops"


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


def best_of_probes(device: torch.device, dtype: torch.dtype, probes: int = PROBES,
                   seconds: float = PROBE_SECONDS) -> list[float]:
    """`probes` separate measurements, a short pause between them."""
    rates = []
    for i in range(probes):
        if i:
            time.sleep(PAUSE_SECONDS)
        rates.append(measure_matmul_peak(device, dtype, seconds=seconds))
    return rates


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_identity(device: torch.device, dtype: torch.dtype) -> dict:
    """What the measured peak depends on: a record matching all of it is reused, anything else re-measured."""
    identity = {"host": platform.node(), "cpu": _cpu_model(), "cpus": os.cpu_count(),
                "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                "device": device.type, "dtype": str(dtype).removeprefix("torch.")}
    if device.type == "cuda":
        identity["gpu"] = torch.cuda.get_device_name(device)
    return identity


def cache_file(identity: dict, folder: Path) -> Path:
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return folder / f"{identity['device']}_{identity['dtype']}_{identity['torch_threads']}t_{key}.json"


def machine_peak(device: torch.device | str, dtype: torch.dtype, folder: Path | None = None) -> tuple[float, str]:
    """(peak FLOP/s, where it came from): the recorded best-of-probes peak of this machine identity,
    measured now (and recorded) when there is none."""
    from nanochat_core.common import settings
    from nanochat_core.common.atomic import write_json_atomic

    device = torch.device(device)
    identity = machine_identity(device, dtype)
    path = cache_file(identity, Path(folder) if folder is not None else settings.base_dir() / CACHE_FOLDER)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("identity") == identity and float(record["peak_flops"]) > 0:
            return float(record["peak_flops"]), f"measured {identity['dtype']} matmul peak, recorded in {path}"
    except (OSError, ValueError, KeyError, TypeError):
        pass  # none yet, or unreadable: measure again and replace it
    rates = best_of_probes(device, dtype)
    peak = max(rates)
    write_json_atomic(path, {"identity": identity, "peak_flops": peak, "probes": rates,
                             "spread": max(rates) / min(rates), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return peak, f"measured {identity['dtype']} matmul peak, best of {len(rates)} probes, recorded in {path}"
