"""Orchestration overhead: one base_train cell launched through Dagster vs run directly from the shell.

    python benchmarks/bench_orchestration.py [--preset demo] [--cell d2|5e10] [--repeats 2]

In a temporary NANOCHAT_BASE_DIR and DAGSTER_HOME: builds the preset's corpus, shards and tokenizer
through Dagster (not timed), then alternates (a) `materialize` of base_model[cell] on a real
instance (Pipes subprocess, checks, event log) and (b) the same training as
`python -m nanochat_core.cli.base_train` with the same flags. Reports wall times and the overhead
against the issue's goal: under 5% plus 10 seconds.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def shell_command(preset, cell) -> list[str]:
    flags = ["--depth", str(cell.depth), "--target-flops", cell.flops_key, "--model-tag", cell.model_tag + "_shell"]
    for key, value in preset.train.items():
        flags += ["--" + key.replace("_", "-"), str(value)]
    return [sys.executable, "-m", "nanochat_core.cli.base_train", *flags]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="demo")
    p.add_argument("--cell", default="d2|5e10")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_orch_"))
    os.environ["NANOCHAT_BASE_DIR"] = str(work / "base")
    os.environ["DAGSTER_HOME"] = str(work / "dagster_home")
    os.environ["NANOCHAT_PRESET"] = args.preset

    import dagster as dg
    from nanochat_pipeline.definitions import build_definitions
    from nanochat_pipeline.instance.home import ensure_dagster_home
    from nanochat_pipeline.partitions import cell_from_key, grid_partitions
    from nanochat_pipeline.presets import load_preset

    ensure_dagster_home()
    preset = load_preset(args.preset)
    defs = build_definitions(preset)
    cell = cell_from_key(grid_partitions(preset), args.cell)
    depth, flops = args.cell.split("|")
    key = dg.MultiPartitionKey({"depth": depth, "flops": flops})
    with dg.DagsterInstance.get() as instance:
        def run_dagster():
            result = dg.materialize(list(defs.assets), selection=["base_model"], partition_key=key, instance=instance,
                                    resources=defs.resources)
            assert result.success

        def run_shell():
            env = {**os.environ, "NANOCHAT_BASE_DIR": str(preset.root)}
            subprocess.run(shell_command(preset, cell), env=env, check=True, stdout=subprocess.DEVNULL)

        print("building corpus, shards, tokenizer (not timed) ...", flush=True)
        assert dg.materialize(list(defs.assets), selection=["raw_corpus", "shuffled_shards", "tokenizer"],
                              instance=instance, resources=defs.resources).success
        times = {"dagster": [], "shell": []}
        for _ in range(args.repeats):
            for name, fn in (("dagster", run_dagster), ("shell", run_shell)):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
                print(f"  {name}: {times[name][-1]:.2f}s", flush=True)
    dagster_s, shell_s = min(times["dagster"]), min(times["shell"])
    overhead = dagster_s - shell_s
    goal = 0.05 * shell_s + 10
    print(f"cell {args.cell} ({preset.name}): shell {shell_s:.2f}s, Dagster {dagster_s:.2f}s (best of {args.repeats}); "
          f"overhead {overhead:.2f}s ({100 * overhead / shell_s:.1f}%); goal < {goal:.2f}s: "
          f"{'met' if overhead < goal else 'NOT met'}")
    print(f"(temporary files in {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
