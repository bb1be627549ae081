"""`python -m nanochat_pipeline run [--preset NAME_OR_FILE]`: the whole graph in one command."""
from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from nanochat_pipeline.cli.status import add_command as add_status_command
from nanochat_pipeline.cli.status import run_status
from nanochat_pipeline.cli.cluster_commands import add_commands as add_cluster_commands
from nanochat_pipeline.cli.cluster_commands import run_command as run_cluster_command
from nanochat_pipeline.presets import DEFAULT_PRESET, PRESET_ENV, PresetError, load_preset


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nanochat_pipeline")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="materialize every asset whose computation exists; skip what is up to date")
    run.add_argument("--preset", default=None,
                     help=f"shipped preset name (demo, scaling, speedrun) or a TOML file; default ${PRESET_ENV} or {DEFAULT_PRESET}")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="stream everything (Dagster's event log, every training step, the children's output) "
                          "instead of one line per asset and a log file")
    run.add_argument("--ladder", action="store_true",
                     help="after the grid, grow it (the preset's [ladder] bounds) until the scaling law is credible")
    run.add_argument("--yes", action="store_true",
                     help="train the grid even when it would take more than an hour here (asked on a terminal; "
                          "without it, refused when stdin is not a terminal)")
    add_cluster_commands(sub)  # dev, manifests
    add_status_command(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "status":
        return run_status(args.preset, whole_process=argv is None)  # argv None: called as the program
    if args.command != "run":
        return run_cluster_command(args)
    name = args.preset or os.environ.get(PRESET_ENV) or DEFAULT_PRESET  # the flag wins over the env var
    try:
        load_preset(name)
    except PresetError as e:
        print(f"nanochat_pipeline: error: {e}", file=sys.stderr)
        return 2
    os.environ[PRESET_ENV] = name  # definitions read the preset from here, as `dagster dev` does
    # Ctrl-C (and `kill -INT`) stop the job cleanly even where it started with SIGINT ignored, as a shell
    # without job control starts `... &` and as nohup'ed or CI-launched parents pass it on: Python then
    # keeps the signal ignored, and the cells it queued would train on after a Ctrl-C.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from nanochat_pipeline.instance.home import ensure_training_pool, prepare_dagster_home
    from nanochat_pipeline.instance.storage import InstanceConfigError
    from nanochat_pipeline.cli.slots import preset_default_slots

    try:  # before anything is written: storage this install lacks, an unreachable database
        _, storage = prepare_dagster_home()
    except InstanceConfigError as e:
        print(f"nanochat_pipeline: error: {e}", file=sys.stderr)
        return 2
    print(f"instance: {storage}", flush=True)
    import warnings

    import dagster as dg

    # Dagster's own Pipes internals use a preview API; the warning says nothing to a pipeline user.
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    from nanochat_pipeline import definitions
    from nanochat_pipeline.cli.main_job import run_main_job
    from nanochat_pipeline.cli.progress import is_terminal
    from nanochat_pipeline.cli.terminal import Terminal, captured_output

    preset = definitions.preset
    log_path = None if args.verbose else run_log_path(preset.root)
    interactive = is_terminal(sys.stdout)
    print(f"preset {preset.name} ({preset.path}); artifacts under {preset.root}", flush=True)
    if log_path is not None:
        print(f"log: {log_path}", flush=True)
    with dg.DagsterInstance.get() as instance, captured_output(log_path) as console:
        ensure_training_pool(instance, default=preset_default_slots(preset))
        bar = interactive and log_path is not None  # bars and immediate start lines on a terminal
        code = run_main_job(definitions.defs, preset, instance, Terminal(console, bar), bar, yes=args.yes)
        if args.ladder and code == 0:
            from nanochat_pipeline.cli.ladder_run import run_ladder

            terminal = Terminal(console)
            # the main job has just run the whole grid (code 0): the ladder goes straight to its rounds
            code = run_ladder(preset, instance, lambda defs: 0, terminal.say)
    if log_path is not None:
        print(f"log: {log_path}")
    return code


def run_log_path(preset_root) -> Path:
    """One log file per main-job run, under the preset's folder, named by its start time (UTC)."""
    from datetime import datetime, timezone

    return Path(preset_root) / "logs" / f"main_job_{datetime.now(timezone.utc):%Y%m%d_%H%M%S}.log"

