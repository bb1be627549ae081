"""The demo's training cells run directly (base_train with the demo preset's [train] flags): per-step time
and final val_bpb, to compare two checkouts of the code on the same data.

    python benchmarks/bench_demo_cells.py --root /tmp/demo_cells --out after.json [--cells d2:8e10 d3:2.5e11]
    PYTHONPATH=/path/to/other/checkout python benchmarks/bench_demo_cells.py --root /tmp/demo_cells --out before.json
    python benchmarks/bench_demo_cells.py --compare before.json after.json   # exits 1 if a val_bpb moved > 1e-3
    python benchmarks/bench_demo_cells.py --root /tmp/demo_cells --out pairs.json --cells all --side-by-side 2

--root holds the data (built once, like the demo's: the embedded corpus, a 512-token tokenizer) and is
reused by the second run, so both train on identical shards. No thread settings: as a newcomer runs it.
`--cells all` is the preset's whole grid. `--side-by-side N` runs N cells at a time, each with
OMP_NUM_THREADS = cores / N (what a training pool of N slots would do with these cells); --compare then
also prints the two runs' whole wall times and their ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PRESET = Path(__file__).resolve().parents[1] / "nanochat_pipeline" / "presets" / "demo.toml"
STEP_DT = re.compile(r"^step \d{5}/\d{5} .*?\| dt: ([\d.]+)ms", re.M)
VAL = re.compile(r"Validation bpb: ([\d.]+)")


def build_data(root: Path, corpus_bytes: int, vocab: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from nanochat_core.data.embedded_corpus import iter_embedded_documents
    from nanochat_core.tokenizer.bpe import Tokenizer, save_token_bytes

    if (root / "tokenizer" / "token_bytes.pt").is_file():
        return
    docs = list(iter_embedded_documents(corpus_bytes))
    n_val = max(1, len(docs) // 20)
    (root / "base_data").mkdir(parents=True, exist_ok=True)
    for i, part in enumerate((docs[:-n_val], docs[-n_val:])):
        pq.write_table(pa.table({"text": part}), root / "base_data" / f"shard_{i:05d}.parquet", row_group_size=256)
    tok = Tokenizer.train_from_iterator(iter(docs[:-n_val]), vocab)
    tok.save(root / "tokenizer")
    save_token_bytes(tok, root / "tokenizer")


def flag_args(flags: dict) -> list[str]:
    out = []
    for key, value in flags.items():
        out += [f"--{key.replace('_', '-')}", str(value)]
    return out


def run_cell(root: Path, depth: int, flops: str, train: dict, threads: int | None = None) -> dict:
    cmd = [sys.executable, "-m", "nanochat_core.cli.base_train", "--depth", str(depth), "--target-flops", flops,
           "--model-tag", f"d{depth}_{flops}", *flag_args(train)]
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(root)} | ({"OMP_NUM_THREADS": str(threads)} if threads else {})
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"d{depth}@{flops} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    dts = [float(x) for x in STEP_DT.findall(proc.stdout)]
    vals = VAL.findall(proc.stdout)
    return {"cell": f"d{depth}:{flops}", "wall": wall, "steps": len(dts), "median_step_ms": statistics.median(dts),
            "mean_step_ms": statistics.fmean(dts), "val_bpb": float(vals[-1]) if vals else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path)
    parser.add_argument("--out")
    parser.add_argument("--cells", nargs="+", default=["d2:8e10", "d3:2.5e11"], help="dDEPTH:FLOPS ..., or all")
    parser.add_argument("--side-by-side", type=int, default=1, metavar="N",
                        help="cells trained at once, each on cores/N threads (default 1: one after another, no thread setting)")
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"))
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--preset", type=Path, default=PRESET, help="the preset whose [train] flags the cells use")
    args = parser.parse_args()
    if args.compare:
        before, after = ({r["cell"]: r for r in json.load(open(p))["cells"]} for p in args.compare)
        worst = 0.0
        for cell in before.keys() & after.keys():
            b, a = before[cell], after[cell]
            diff = abs(a["val_bpb"] - b["val_bpb"])
            worst = max(worst, diff)
            print(f"{cell}: val_bpb {b['val_bpb']:.6f} -> {a['val_bpb']:.6f} (diff {diff:.1e}); median step "
                  f"{b['median_step_ms']:.1f} -> {a['median_step_ms']:.1f} ms (x{b['median_step_ms'] / a['median_step_ms']:.2f}); "
                  f"whole command {b['wall']:.1f} -> {a['wall']:.1f} s")
        walls = [json.load(open(p)).get("total_wall") for p in args.compare]
        if None not in walls:
            print(f"all cells: {walls[0]:.1f} s -> {walls[1]:.1f} s wall (x{walls[0] / walls[1]:.2f})")
        sys.exit(0 if worst <= args.tol else 1)
    if args.root is None or args.out is None:
        parser.error("--root and --out are needed to run cells")
    preset = tomllib.loads(args.preset.read_text())
    build_data(args.root, preset["corpus"]["max_bytes"], preset["tokenizer"]["vocab_size"])
    train = {k: v for k, v in preset["train"].items() if k != "nproc_per_node"}
    specs = ([f"d{d}:{f}" for d in preset["depths"] for f in preset["flops"]] if args.cells == ["all"]
             else args.cells)
    threads = max(1, (os.cpu_count() or 1) // args.side_by_side) if args.side_by_side > 1 else None

    def one(spec: str) -> dict:
        depth, flops = spec.lstrip("d").split(":")
        r = run_cell(args.root, int(depth), flops, train, threads)
        print(json.dumps(r), flush=True)
        return r

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.side_by_side) as pool:  # each thread waits on one child process
        cells = list(pool.map(one, specs))
    total = time.perf_counter() - t0
    print(f"{len(cells)} cells, {args.side_by_side} at a time{f' on {threads} thread(s) each' if threads else ''}: "
          f"{total:.1f} s wall")
    with open(args.out, "w") as f:
        json.dump({"cells": cells, "side_by_side": args.side_by_side, "threads_per_cell": threads,
                   "total_wall": total, "load_average": os.getloadavg()[0]}, f, indent=1)


if __name__ == "__main__":
    main()
