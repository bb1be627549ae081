"""Our base_train beside nanochat's own scripts/base_train on the same data, same recipe, same machine.

    python benchmarks/bench_vs_nanochat.py --nanochat /path/to/nanochat [--python /path/to/venv/bin/python]
                                           [--steps 20] [--repeats 2]

The recipe: depth 4, head dim 64, seq 512, window L, total batch 8192, device batch 16, vocab 4096,
fp32 on CPU, no evaluation. One NANOCHAT_BASE_DIR is built once (the embedded corpus as parquet
shards in base_data/, a 4096-token tokenizer as tokenizer.pkl + token_bytes.pt: the layout both read),
then the two commands run one after the other, `--repeats` times, alternating which goes first, each
as its users run it (no thread settings; ours eager, see --ours-compile, nanochat compiling as it
always does), each with a cold inductor cache. Per run: whole-command wall time and steady tokens/s
(steps from the 10th on, from each command's own "dt" per step). Prints the medians and the ratios.
nanochat's source stays where it is: this script only runs it (its --python needs nanochat's deps:
torch, wandb, tiktoken, rustbpe, pyarrow, psutil, filelock).
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_base_train import build_base  # noqa: E402

STEP = re.compile(r"^step (\d{5})/\d{5} .*?\| loss: ([\d.]+) .*?\| dt: ([\d.]+)ms", re.M)
WARMUP_STEPS = 10  # excluded from the steady state, as bench_base_train.py
RECIPE = ["--depth", "4", "--head-dim", "64", "--max-seq-len", "512", "--window-pattern", "L",
          "--total-batch-size", "8192", "--device-batch-size", "16", "--eval-every", "-1",
          "--core-metric-every", "-1", "--sample-every", "-1", "--device-type", "cpu"]


def run(name: str, cmd: list[str], cwd: str | None, root: Path, index: int) -> dict:
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(root),
           "TORCHINDUCTOR_CACHE_DIR": str(root / f"inductor_{name}_{index}")}  # cold, as a first run
    if name == "nanochat":
        env.pop("PYTHONPATH", None)  # nanochat imports its own packages from its checkout (cwd)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    rows = [(int(s), float(loss), float(dt) / 1000) for s, loss, dt in STEP.findall(proc.stdout)]
    steady = [dt for s, _, dt in rows if s >= WARMUP_STEPS]
    if not steady:
        raise SystemExit(f"{name}: no steady steps parsed from its output:\n{proc.stdout[-2000:]}")
    compile_line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("torch.compile")), "")
    return {"wall": wall, "tok_s": 8192 * len(steady) / sum(steady), "steps": len(rows),
            "last_loss": rows[-1][1], "note": compile_line}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nanochat", required=True, help="a nanochat checkout (its scripts/base_train.py)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter that has nanochat's deps")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--corpus-bytes", type=int, default=4_000_000)
    parser.add_argument("--ours-compile", choices=("0", "1", "auto"), default="0",
                        help="our --compile (default 0: what auto picks for these short runs on an idle machine; "
                             "auto decides from a peak-FLOP/s probe, which a loaded machine makes it misjudge)")
    parser.add_argument("--root", type=Path, help="reuse (or build once into) this data folder instead of a "
                                                   "temporary one")
    args = parser.parse_args()
    if not (Path(args.nanochat) / "scripts" / "base_train.py").is_file():
        raise SystemExit(f"--nanochat {args.nanochat}: no scripts/base_train.py there")
    if args.steps <= WARMUP_STEPS:
        raise SystemExit(f"--steps must exceed the {WARMUP_STEPS} warm-up steps, got {args.steps}")
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} CPUs, load average {load:.1f} at the start; steps {args.steps}, repeats {args.repeats}",
          flush=True)
    iters = ["--num-iterations", str(args.steps)]
    commands = {
        "ours": ([sys.executable, "-m", "nanochat_core.cli.base_train", *RECIPE, *iters, "--model-tag", "bench_ours",
                  "--compile", args.ours_compile],
                 None),
        "nanochat": ([args.python, "-m", "scripts.base_train", *RECIPE, *iters, "--model-tag", "bench_nanochat"],
                     args.nanochat),
    }
    results: dict[str, list[dict]] = {"ours": [], "nanochat": []}
    with tempfile.TemporaryDirectory(prefix="bench_vs_nanochat_") as tmp:
        root = args.root or Path(tmp)
        if not (root / "tokenizer" / "token_bytes.pt").is_file():
            build_base(root, args.corpus_bytes)
        for i in range(args.repeats):
            order = ("ours", "nanochat") if i % 2 == 0 else ("nanochat", "ours")
            for name in order:
                r = run(name, *commands[name], root, i)
                results[name].append(r)
                print(f"run {i} {name:8s}: whole command {r['wall']:6.1f}s, steady {r['tok_s']:7,.0f} tok/s, "
                      f"{r['steps']} steps, last logged loss {r['last_loss']:.4f} {r['note']} "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
    med = {n: (statistics.median(r["tok_s"] for r in rs), statistics.median(r["wall"] for r in rs))
           for n, rs in results.items()}
    print(f"median steady tok/s: ours {med['ours'][0]:,.0f}, nanochat {med['nanochat'][0]:,.0f} "
          f"-> ours x{med['ours'][0] / med['nanochat'][0]:.2f}", flush=True)
    print(f"median whole command: ours {med['ours'][1]:.1f}s, nanochat {med['nanochat'][1]:.1f}s "
          f"-> ours x{med['nanochat'][1] / med['ours'][1]:.2f} faster", flush=True)


if __name__ == "__main__":
    main()
