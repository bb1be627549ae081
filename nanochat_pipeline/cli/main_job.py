"""The one-command main job: materialize every asset whose computation exists.

Each asset (each base_model cell) is its own run on the persistent instance, so `dg dev`
shows the same history. Every asset runs in this process, except the grid's cells when the
training pool lets several train at once: those are queued runs that a daemon started for the
job launches (cli/queued_cells.py). Assets that are up to date (materialized, not unsynced, files
on disk) are skipped. sft_model and eval_report run for the preset's chat_cells only (each is one more
training run and evaluation), rl_model (between them) for its rl_cells; the other cells are one
click away in the UI.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path

import dagster as dg

from nanochat_core.common import settings
from nanochat_core.synthetic.generate import default_output
from nanochat_pipeline.presets.paths import corpus_file, results_csv, tokenizer_files
from nanochat_pipeline.partitions import cell_from_key, declared_cells, grid_partitions
from nanochat_pipeline.children.progress import progress_file
from nanochat_pipeline.cli.progress import ProgressWatcher
from nanochat_pipeline.cli.failure_line import run_failure_line
from nanochat_pipeline.cli.grid_cost import REFUSED, confirmed, grid_cost
from nanochat_pipeline.cli.queued_cells import (POLL_EVERY, STOP_WAIT_S, Daemon, Follower, longest_first,
                                                queue_is_usable, submit_cells)
from nanochat_pipeline.cli.run_records import (materialization_metadata, run_warnings, run_was_interrupted,
                                               scaling_verdict, was_interrupted)
from nanochat_pipeline.instance.home import pool_limit
from nanochat_pipeline.staleness import (NEVER_MATERIALIZED, failed_blocking_check, latest_metadata, run_reason,
                                         stale_resolver)
from nanochat_pipeline.cli.terminal import Terminal, key_metric

TRAINING_ASSETS = ("base_model", "sft_model")  # their children write a progress file
GRID_JOB = "scaling_grid_job"  # definitions.py: base_model alone, one run per cell
WORKSPACE_YAML = Path(__file__).resolve().parents[2] / "workspace.yaml"
UNPARTITIONED_ORDER = ["raw_corpus", "shuffled_shards", "tokenizer", "synthetic_conversations", "eval_bundle", "task_data"]


def artifact_paths(preset, asset: str, partition: str | None) -> list[Path]:
    """Files an up-to-date asset must still have on disk (deleted by hand -> rerun it)."""
    root = preset.root
    if asset == "raw_corpus":
        return [corpus_file(preset)]
    if asset == "shuffled_shards":
        return [settings.base_data_dir(root) / "manifest.json"]
    if asset == "tokenizer":
        return tokenizer_files(settings.tokenizer_dir(root))
    if asset == "synthetic_conversations":
        return [default_output(root)]
    if asset in ("base_model", "sft_model", "rl_model", "eval_report"):
        tag = cell_from_key(grid_partitions(preset), partition).model_tag
        return [{"base_model": settings.base_checkpoints_dir(root) / tag,
                 "sft_model": settings.chatsft_checkpoints_dir(root) / tag,
                 "rl_model": settings.chatrl_checkpoints_dir(root) / tag,
                 "eval_report": settings.report_dir(root) / tag / "report.md"}[asset]]
    if asset == "scaling_results":
        return [results_csv(preset)]
    return []


def run_main_job(defs: dg.Definitions, preset, instance: dg.DagsterInstance, terminal: Terminal,
                 interactive: bool = False, yes: bool = False) -> int:
    """Materialize what is missing or unsynced, one line per asset on `terminal` (a progress bar for
    training cells); return 0 on success, 1 on the first failure, 130 when interrupted, REFUSED when
    the grid would take more than an hour here and neither `yes` nor the person at the terminal agreed."""
    assets = list(defs.assets)
    graph = defs.resolve_asset_graph()
    run_tags = {"nanochat/main_job": preset.name}
    daemon: Daemon | None = None  # the queue's daemon while cells train side by side

    # The instance's answers since the last materialization: only a materialization changes them, and a
    # no-op run asks ~50 questions (each grid cell twice) that share the same upstream records.
    answers: dict[tuple[str, str | None], str | None] = {}
    resolver = None

    def instance_changed() -> None:
        nonlocal resolver
        answers.clear()
        resolver = None

    def why_run(asset: str, partition: str | None = None) -> str | None:
        """None when up to date; else why (never materialized, unsynced, its last blocking check
        failed, files gone). Earlier steps change the answer: materializations clear what was read."""
        nonlocal resolver
        if (asset, partition) not in answers:
            resolver = resolver or stale_resolver(graph, instance)
            answers[asset, partition] = run_reason(graph, instance, dg.AssetKey(asset), partition, resolver)
        missing = [str(p) for p in artifact_paths(preset, asset, partition) if not p.exists()]
        return answers[asset, partition] or (f"missing on disk: {', '.join(missing)}" if missing else None)

    def materialize(asset: str, partition: str | None = None) -> int:
        label = asset + (f"[{partition}]" if partition else "")
        reason = why_run(asset, partition)
        if reason is None:
            terminal.finished(label, "up to date", None, key_metric(asset, latest_metadata(instance, asset, partition)))
            return 0
        # a training cell (its progress follows) and a reason to re-run are shown at once
        since = terminal.started(start_label(label, reason), at_once=asset in TRAINING_ASSETS or reason != NEVER_MATERIALIZED)
        with progress_of(asset, partition, label):
            try:
                result = dg.materialize(assets, selection=[asset], partition_key=partition, instance=instance,
                                        resources=defs.resources, raise_on_error=False, tags=run_tags)
            finally:
                instance_changed()
        outcome = "interrupted" if was_interrupted(result) else "done" if result.success else "FAILED"
        return report(asset, partition, result.run_id, outcome, since,
                      materialization_metadata(result, asset) if result.success else {})

    def report(asset: str, partition: str | None, run_id: str, outcome: str, since: float | None,
               metadata: dict, seconds: float | None = None) -> int:
        """The end line of one run (its first warning before it), and why when it failed; the exit code."""
        label = asset + (f"[{partition}]" if partition else "")
        warnings = run_warnings(instance, run_id)
        if warnings:  # one line per run: the first warning, and how many more the log file holds
            terminal.warn(f"{label}: {warnings[0]}", more=len(warnings) - 1)
        if outcome == "interrupted":
            terminal.finished(label, "interrupted", since, seconds=seconds)
            return 130
        if outcome == "FAILED":
            terminal.finished(label, "FAILED", since, f"run {run_id}", seconds=seconds)
            # A failed blocking check says which check, on which file, with which value; else the error the
            # asset's code raised (Dagster's wrapper around it stays in the log file).
            why = (failed_blocking_check(graph, instance, dg.AssetKey(asset), partition)
                   or run_failure_line(instance, run_id))
            terminal.cause(label, why)
            return 1
        terminal.finished(label, "done", since, key_metric(asset, metadata), seconds=seconds)
        return 0

    def train_grid(cells: list[str]) -> int:
        """The grid's cells, once their cost is agreed (--yes, or a terminal's y, when over an hour): side
        by side through the instance's queue when the training pool lets more than one train at once (and
        there is more than one to train), else one after another here."""
        reasons = {cell: why_run("base_model", cell) for cell in cells}
        to_train = [cell for cell in cells if reasons[cell] is not None]
        partitions = graph.get(dg.AssetKey("base_model")).partitions_def
        if not confirmed(grid_cost(preset, [cell_from_key(partitions, c) for c in to_train]), yes, terminal.say):
            return REFUSED
        if not side_by_side(len(to_train)):
            for cell in cells:
                code = materialize("base_model", cell)
                if code:
                    return code
            return 0
        for cell in cells:
            if reasons[cell] is None:
                materialize("base_model", cell)  # its "up to date" line
        return train_side_by_side(to_train, reasons)

    def train_side_by_side(cells: list[str], reasons: dict) -> int:
        partitions = graph.get(dg.AssetKey("base_model")).partitions_def
        nonlocal daemon
        if daemon is None:
            daemon = Daemon(WORKSPACE_YAML, preset.root / "logs")
        watchers: dict[str, ProgressWatcher] = {}
        runs: dict[str, str] = {}
        follower = Follower(instance, runs)
        codes: list[int] = []

        def follow() -> None:
            """Start lines (and progress) of the runs that started, end lines of those that ended."""
            started, ended = follower.changes()
            for run_id in started:
                cell = runs[run_id]
                label = f"base_model[{cell}]"
                terminal.started(start_label(label, reasons[cell]), at_once=True)
                free = min(set(range(len(runs))) - {w.position for w in watchers.values()})
                watchers[run_id] = progress_of("base_model", cell, label, position=free).__enter__()
            for run_id, record in ended:
                if run_id in watchers:
                    watchers.pop(run_id).__exit__(None, None, None)
                elif run_id not in follower.started:
                    continue  # cancelled while queued: it never began
                cell, run = runs[run_id], record.dagster_run
                outcome = ("interrupted" if run_was_interrupted(instance, run) else
                           "done" if run.status == dg.DagsterRunStatus.SUCCESS else "FAILED")
                seconds = record.end_time - record.start_time if record.start_time and record.end_time else None
                code = report("base_model", cell, run_id, outcome, None,
                              latest_metadata(instance, "base_model", cell) if outcome == "done" else {}, seconds)
                if code and not codes:  # the first failure: nothing more starts, the cells training finish
                    follower.cancel(only_queued=True)
                codes.append(code)

        instance_changed()  # from here the queue's runs write to the instance
        try:
            runs.update(submit_cells(instance, WORKSPACE_YAML, GRID_JOB, partitions, longest_first(partitions, cells),
                                     run_tags))
            while len(follower.ended) < len(runs):
                follow()
                if not daemon.alive():
                    follower.cancel(only_queued=False)
                    terminal.cause("base_model", f"the queue's daemon stopped (exit code {daemon.proc.returncode}); "
                                                 f"its log: {daemon.log_path}")
                    return 1
                time.sleep(POLL_EVERY)
        except KeyboardInterrupt:
            follower.cancel(only_queued=False)  # each training child saves a checkpoint, as a Ctrl-C here does
            deadline = time.monotonic() + STOP_WAIT_S
            while len(follower.ended) < len(runs) and time.monotonic() < deadline:
                follow()
                time.sleep(POLL_EVERY)
            return 130
        finally:
            for watcher in watchers.values():
                watcher.__exit__(None, None, None)
        return next((code for code in codes if code), 0)

    def progress_of(asset: str, partition: str | None, label: str, position: int = 0):
        """The training cells' progress bar (their child writes a progress file); nothing for the rest."""
        if asset not in TRAINING_ASSETS or partition is None:
            return contextlib.nullcontext()
        tag = cell_from_key(grid_partitions(preset), partition).model_tag
        return ProgressWatcher(progress_file(preset.root, asset, tag), label, terminal.console, interactive, position)

    def steps():
        for asset in UNPARTITIONED_ORDER:
            yield asset, None
        yield "base_model", grid_cells()
        yield "scaling_results", None
        for cell in preset.chat_cells:
            rl = ("rl_model",) if cell in preset.rl_cells else ()
            for asset in ("sft_model", *rl, "eval_report"):
                yield asset, cell

    def side_by_side(cells_to_train: int) -> bool:
        """Whether the grid's cells go to the queue: more than one to train, a pool that lets more than
        one train at once, and a queued run coordinator (a dagster.yaml may name another)."""
        return cells_to_train > 1 and (pool_limit(instance) or 1) > 1 and queue_is_usable(instance)

    def grid_cells() -> list[str]:
        declared = set(declared_cells(preset))  # never the rest of the depth x budget product
        return [cell for cell in graph.get(dg.AssetKey("base_model")).partitions_def.get_partition_keys()
                if cell in declared]

    code = 0
    try:
        if side_by_side(sum(why_run("base_model", cell) is not None for cell in grid_cells())):
            # cells will train side by side: the daemon's code server loads while the data assets run
            daemon = Daemon(WORKSPACE_YAML, preset.root / "logs")
        for asset, partition in steps():
            if asset == "base_model":
                code = train_grid(partition)
            else:
                code = materialize(asset, partition)
            if code:
                break
    except KeyboardInterrupt:  # between runs (a run itself turns Ctrl-C into an interrupted step)
        code = 130
    finally:
        if daemon is not None:
            daemon.stop()
    closing(terminal, preset, instance, code)
    return code


def start_label(label: str, reason: str) -> str:
    return label + ("" if reason == NEVER_MATERIALIZED else f" ({reason})")


def closing(terminal: Terminal, preset, instance: dg.DagsterInstance, code: int) -> None:
    """The summary table, the scaling verdict, where everything is, how to resume and open the UI."""
    terminal.summary_table()
    from nanochat_core.scaling.analysis import FIT_FILE  # torch: only once the job is over

    terminal.say(f"scaling: {scaling_verdict(instance, results_csv(preset).parent / FIT_FILE)}")
    terminal.say(f"results: {results_csv(preset).parent}")
    terminal.say(f"checkpoints: {settings.base_checkpoints_dir(preset.root)}, {settings.chatsft_checkpoints_dir(preset.root)}")
    terminal.say(f"report cards: {settings.report_dir(preset.root)}/<tag>/report.md")
    terminal.say(f"history: {instance.root_directory}; open it with: {ui_command(preset, instance)}")
    if code == 130:
        kept = sum(checkpoint_kept(preset, o) for o in terminal.outcomes)  # several when cells trained side by side
        saved = ("the cell in progress saved a checkpoint. " if kept == 1 else
                 f"the {kept} cells in progress saved checkpoints. " if kept else "")
        terminal.say(f"interrupted: {saved}Resume with: python -m nanochat_pipeline run --preset {preset_argument(preset)}")
    elif code and code != REFUSED:
        terminal.say("failed: the log file has the whole error; fix it and run the same command again "
                     "(what is done is skipped)")


def checkpoint_kept(preset, outcome) -> bool:
    """An interrupted training run that left a checkpoint to resume from (one stopped before its
    first step has none)."""
    asset, _, partition = outcome.label.partition("[")
    if outcome.status != "interrupted" or asset not in TRAINING_ASSETS or not partition:
        return False
    return any(artifact_paths(preset, asset, partition.rstrip("]"))[0].glob("model_*.pt"))


def preset_argument(preset) -> str:
    """The --preset value that names this preset again: its name if shipped, else its file."""
    from nanochat_pipeline.presets import SHIPPED_DIR

    return preset.name if Path(preset.path).parent == SHIPPED_DIR else str(preset.path)


def ui_command(preset, instance: dg.DagsterInstance) -> str:
    return (f"DAGSTER_HOME={instance.root_directory} NANOCHAT_PRESET={preset_argument(preset)} "
            f"dg dev -w {WORKSPACE_YAML}")
