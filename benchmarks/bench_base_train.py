"""Benchmark base_train on this CPU: tokens/s and MFU against a measured fp32 matmul peak.

    python benchmarks/bench_base_train.py [--steps 30] [--compile both|0|1]

One run: (1) a 2-second fp32 matmul probe gives the peak; (2) a vocab-4096 tokenizer is trained on
~4 MB of the embedded corpus, written as shards into a temporary NANOCHAT_BASE_DIR; (3) the real
`python -m nanochat_core.cli.base_train` command runs at depth 4, seq 512, head-dim 64, window L,
total batch 8192, device batch 16, for --steps steps, with and without torch.compile (compiling
cold, into a fresh inductor cache). Reported per
variant: whole-command wall time, steady-state tokens/s and MFU (steps after the first 10, as
nanochat's "total time" counts them) and the ratio to the measured peak.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch

STEP = re.compile(r"^step (\d{5})/\d{5} .*\| dt: ([\d.]+)ms \| tok/sec: ([\d,]+) \| mfu: ([\d.]+)", re.M)
WARMUP_STEPS = 10  # excluded from the steady state (first steps pay for allocation / compilation)


def build_base(root: Path, corpus_bytes: int) -> None:
    from nanochat_core.data.embedded_corpus import iter_embedded_documents
    from nanochat_core.tokenizer.bpe import Tokenizer, save_token_bytes

    t0 = time.perf_counter()
    docs = list(iter_embedded_documents(corpus_bytes))
    n_val = max(1, len(docs) // 20)
    data = root / "base_data"
    data.mkdir(parents=True)
    for i, part in enumerate((docs[:-n_val], docs[-n_val:])):
        pq.write_table(pa.table({"text": part}), data / f"shard_{i:05d}.parquet", row_group_size=1024,
                       compression="zstd", compression_level=3)
    tok = Tokenizer.train_from_iterator(iter(docs[:-n_val]), 4096)
    tok.save(root / "tokenizer")
    save_token_bytes(tok, root / "tokenizer")
    print(f"corpus: {len(docs):,} docs, {sum(map(len, docs)) / 1e6:.1f}M chars; tokenizer 4096 trained; "
          f"set-up {time.perf_counter() - t0:.1f}s", flush=True)


def run_train(root: Path, steps: int, compile_flag: str, peak: float) -> dict:
    cmd = [sys.executable, "-m", "nanochat_core.cli.base_train", "--depth", "4", "--head-dim", "64",
           "--max-seq-len", "512", "--window-pattern", "L", "--total-batch-size", "8192",
           "--device-batch-size", "16", "--num-iterations", str(steps), "--eval-every", "-1",
           "--core-metric-every", "-1", "--sample-every", "-1", "--device-type", "cpu",
           "--peak-flops", str(peak), "--compile", compile_flag, "--model-tag", f"bench_compile{compile_flag}"]
    t0 = time.perf_counter()
    # A fresh inductor cache: the compiled variant pays a cold compile, as a first run does.
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(root), "TORCHINDUCTOR_CACHE_DIR": str(root / f"inductor_{compile_flag}")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"base_train failed:\n{proc.stdout}\n{proc.stderr}")
    flops_per_token = float(re.search(r"FLOPs/token (\S+)", proc.stdout).group(1))
    rows = [(int(s), float(dt) / 1000) for s, dt, _, _ in STEP.findall(proc.stdout)]
    steady = [dt for s, dt in rows if s >= WARMUP_STEPS] or [dt for _, dt in rows]
    first = sum(dt for s, dt in rows if s < WARMUP_STEPS)
    tok_s = 8192 * len(steady) / sum(steady)
    return {"wall": wall, "tok_s": tok_s, "mfu": 100 * tok_s * flops_per_token / peak,
            "first_steps_s": first, "flops_per_token": flops_per_token, "steps": len(rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--compile", choices=("both", "0", "1"), default="both")
    parser.add_argument("--corpus-bytes", type=int, default=4_000_000)
    args = parser.parse_args()

    from nanochat_core.common.flops_probe import measure_matmul_peak

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    peak = measure_matmul_peak("cpu", torch.float32, seconds=2.0)
    print(f"fp32 matmul peak: {peak / 1e9:.1f} GFLOP/s", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_base_train_") as tmp:
        root = Path(tmp)
        build_base(root, args.corpus_bytes)
        variants = ("0", "1") if args.compile == "both" else (args.compile,)
        results = {}
        for flag in variants:
            r = results[flag] = run_train(root, args.steps, flag, peak)
            print(f"compile={flag}: {r['steps']} steps, whole command {r['wall']:.1f}s; first {WARMUP_STEPS} steps "
                  f"{r['first_steps_s']:.1f}s; steady state {r['tok_s']:,.0f} tok/s = "
                  f"{r['tok_s'] * r['flops_per_token'] / 1e9:.1f} GFLOP/s, MFU {r['mfu']:.1f}% of the measured peak "
                  f"({r['flops_per_token']:.3e} FLOPs/token)", flush=True)
        if len(results) == 2:
            a, b = results["0"], results["1"]
            print(f"torch.compile: steady tok/s x{b['tok_s'] / a['tok_s']:.2f}, whole-command wall time "
                  f"x{b['wall'] / a['wall']:.2f} ({'pays' if b['wall'] < a['wall'] else 'does not pay'} "
                  f"for a {args.steps}-step run)", flush=True)


if __name__ == "__main__":
    main()
