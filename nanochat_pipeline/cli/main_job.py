"""The one-command main job: materialize, in-process, every asset whose computation exists.

Each asset (each base_model cell) is its own run on the persistent instance, so `dg dev`
shows the same history; assets that are up to date (materialized, not unsynced, files on disk)
are skipped. sft_model and eval_report run for the preset's chat_cells only (each is one more
training run and evaluation), rl_model (between them) for its rl_cells; the other cells are one
click away in the UI.
"""
from __future__ import annotations

import contextlib
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
from nanochat_pipeline.cli.run_records import (materialization_metadata, run_warnings, scaling_verdict,
                                           was_interrupted)
from nanochat_pipeline.staleness import failed_blocking_check, latest_metadata, run_reason
from nanochat_pipeline.cli.terminal import Terminal, key_metric

TRAINING_ASSETS = ("base_model", "sft_model")  # their children write a progress file
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

    def why_run(asset: str, partition: str | None = None) -> str | None:
        """None when up to date; else why (never materialized, unsynced, its last blocking check
        failed, files gone). Asked afresh each time: earlier steps change the answer."""
        missing = [str(p) for p in artifact_paths(preset, asset, partition) if not p.exists()]
        return run_reason(graph, instance, dg.AssetKey(asset), partition) or (
            f"missing on disk: {', '.join(missing)}" if missing else None)

    def materialize(asset: str, partition: str | None = None) -> int:
        label = asset + (f"[{partition}]" if partition else "")
        reason = why_run(asset, partition)
        if reason is None:
            terminal.finished(label, "up to date", None, key_metric(asset, latest_metadata(instance, asset, partition)))
            return 0
        first_time = reason == "never materialized"
        # a training cell (its progress follows) and a reason to re-run are shown at once
        since = terminal.started(label + ("" if first_time else f" ({reason})"),
                                 at_once=asset in TRAINING_ASSETS or not first_time)
        with progress_of(asset, partition, label):
            result = dg.materialize(assets, selection=[asset], partition_key=partition, instance=instance,
                                    resources=defs.resources, raise_on_error=False,
                                    tags={"nanochat/main_job": preset.name})
        warnings = run_warnings(instance, result.run_id)
        if warnings:  # one line per run: the first warning, and how many more the log file holds
            terminal.warn(f"{label}: {warnings[0]}", more=len(warnings) - 1)
        if was_interrupted(result):
            terminal.finished(label, "interrupted", since)
            return 130
        if not result.success:
            terminal.finished(label, "FAILED", since, f"run {result.run_id}")
            # A failed blocking check says which check, on which file, with which value; else the error the
            # asset's code raised (Dagster's wrapper around it stays in the log file).
            why = (failed_blocking_check(graph, instance, dg.AssetKey(asset), partition)
                   or run_failure_line(instance, result.run_id))
            terminal.cause(label, why)
            return 1
        terminal.finished(label, "done", since, key_metric(asset, materialization_metadata(result, asset)))
        return 0

    def progress_of(asset: str, partition: str | None, label: str):
        """The training cells' progress bar (their child writes a progress file); nothing for the rest."""
        if asset not in TRAINING_ASSETS or partition is None:
            return contextlib.nullcontext()
        tag = cell_from_key(grid_partitions(preset), partition).model_tag
        return ProgressWatcher(progress_file(preset.root, asset, tag), label, terminal.console, interactive)

    def steps():
        for asset in UNPARTITIONED_ORDER:
            yield asset, None
        declared = set(declared_cells(preset))  # never the rest of the depth x budget product
        for cell in graph.get(dg.AssetKey("base_model")).partitions_def.get_partition_keys():
            if cell in declared:
                yield "base_model", cell
        yield "scaling_results", None
        for cell in preset.chat_cells:
            rl = ("rl_model",) if cell in preset.rl_cells else ()
            for asset in ("sft_model", *rl, "eval_report"):
                yield asset, cell

    def grid_agreed() -> bool:
        """Before the first cell trains: its cost, and --yes (or a terminal's y) when over an hour."""
        partitions = graph.get(dg.AssetKey("base_model")).partitions_def
        declared = set(declared_cells(preset))
        to_train = [cell_from_key(partitions, key) for key in partitions.get_partition_keys()
                    if key in declared and why_run("base_model", key) is not None]
        return confirmed(grid_cost(preset, to_train), yes, terminal.say)

    code = 0
    try:
        cost_said = False
        for asset, partition in steps():
            if asset == "base_model" and not cost_said:
                cost_said = True
                if not grid_agreed():
                    code = REFUSED
                    break
            code = materialize(asset, partition)
            if code:
                break
    except KeyboardInterrupt:  # between runs (a run itself turns Ctrl-C into an interrupted step)
        code = 130
    closing(terminal, preset, instance, code)
    return code


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
        last = terminal.outcomes[-1] if terminal.outcomes else None
        cell = last is not None and last.status == "interrupted" and last.label.partition("[")[0] in TRAINING_ASSETS
        saved = "the cell in progress saved a checkpoint. " if cell else ""
        terminal.say(f"interrupted: {saved}Resume with: python -m nanochat_pipeline run --preset {preset_argument(preset)}")
    elif code and code != REFUSED:
        terminal.say("failed: the log file has the whole error; fix it and run the same command again "
                     "(what is done is skipped)")


def preset_argument(preset) -> str:
    """The --preset value that names this preset again: its name if shipped, else its file."""
    from nanochat_pipeline.presets import SHIPPED_DIR

    return preset.name if Path(preset.path).parent == SHIPPED_DIR else str(preset.path)


def ui_command(preset, instance: dg.DagsterInstance) -> str:
    return (f"DAGSTER_HOME={instance.root_directory} NANOCHAT_PRESET={preset_argument(preset)} "
            f"dg dev -w {WORKSPACE_YAML}")
