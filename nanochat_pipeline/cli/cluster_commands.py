"""`python -m nanochat_pipeline dev` and `manifests`: the UI on whatever instance DAGSTER_HOME holds, and
the Kubernetes objects a preset's cells would be submitted as, written without a cluster."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from nanochat_pipeline.presets import DEFAULT_PRESET, PRESET_ENV, PresetError, load_preset


def add_commands(sub) -> None:
    dev = sub.add_parser("dev", help="`dagster dev` on DAGSTER_HOME's instance (created with the shipped "
                                     "SQLite dagster.yaml only when it has none); says which storage it is on")
    dev.add_argument("dagster_args", nargs=argparse.REMAINDER,
                     help="passed on to `dagster dev` (default: -w workspace.yaml when present)")
    manifests = sub.add_parser("manifests", help="write the Kubernetes manifests of a preset's cells and "
                                                 "helm-values.yaml for the Dagster Helm chart, without a cluster")
    manifests.add_argument("--preset", default=None, help=f"shipped preset name or TOML file; default ${PRESET_ENV}")
    manifests.add_argument("--out", required=True, type=Path, help="folder to write <model_tag>.yaml files into")


def run_command(args) -> int:
    if args.command == "dev":
        return run_dev(args.dagster_args)
    return run_manifests(args.preset or os.environ.get(PRESET_ENV) or DEFAULT_PRESET, args.out)


def run_dev(dagster_args: list[str]) -> int:
    from nanochat_pipeline.cli.slots import preset_default_slots
    from nanochat_pipeline.instance.home import ensure_training_pool, prepare_dagster_home
    from nanochat_pipeline.instance.storage import InstanceConfigError
    from nanochat_pipeline.presets import PresetError, active_preset

    try:
        _, storage = prepare_dagster_home()
    except InstanceConfigError as e:
        print(f"nanochat_pipeline: error: {e}", file=sys.stderr)
        return 2
    import dagster as dg

    try:
        default = preset_default_slots(active_preset())
    except PresetError as e:  # dagster dev itself says what is wrong with NANOCHAT_PRESET
        print(f"nanochat_pipeline: warning: {e}; the training pool defaults to 1 slot", file=sys.stderr)
        default = 1
    with dg.DagsterInstance.get() as instance:
        slots = ensure_training_pool(instance, default=default)
    print(f"instance: {storage}; training pool: {slots} slot(s)", flush=True)
    if not dagster_args and Path("workspace.yaml").is_file():
        dagster_args = ["-w", "workspace.yaml"]
    elif not dagster_args:
        dagster_args = ["-m", "nanochat_pipeline.definitions"]
    os.execv(sys.executable, [sys.executable, "-m", "dagster", "dev", *dagster_args])


def run_manifests(preset_name: str, out: Path) -> int:
    from nanochat_pipeline.cli.manifests import write_manifests

    try:
        paths = write_manifests(load_preset(preset_name), out)
    except PresetError as e:
        print(f"nanochat_pipeline: error: {e}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0
