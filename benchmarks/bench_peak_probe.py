"""Spread of the measured peak FLOP/s (the MFU denominator on CPU) between runs on one machine.

Before: each training run measured one one-second probe of its own, so cells of one sweep were
quoted against different denominators. After: the best of several short probes, measured once per
machine identity and reused, so every later cell uses the very same number. This measures the
spread (max / min) of `--runs` independent measurements of each kind, interleaved so that machine
noise hits both alike, plus what a cell gets once the record exists.

    python benchmarks/bench_peak_probe.py [--runs 6] [--threads N]
"""
from __future__ import annotations

import argparse
import tempfile

import torch

from nanochat_core.common import flops_probe


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=6)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    single, best_of = [], []
    for _ in range(args.runs):
        single.append(flops_probe.measure_matmul_peak("cpu", torch.float32, seconds=1.0))
        best_of.append(max(flops_probe.best_of_probes(torch.device("cpu"), torch.float32)))
    with tempfile.TemporaryDirectory() as folder:
        reused = [flops_probe.machine_peak("cpu", torch.float32, folder=folder)[0] for _ in range(args.runs)]
    for name, rates in (("one 1 s probe per run (before)", single),
                        (f"best of {flops_probe.PROBES} x {flops_probe.PROBE_SECONDS} s probes", best_of),
                        ("recorded once, reused by each run (after)", reused)):
        print(f"{name:45s} min {min(rates):.3e}  max {max(rates):.3e}  spread x{max(rates) / min(rates):.3f}")


if __name__ == "__main__":
    main()
