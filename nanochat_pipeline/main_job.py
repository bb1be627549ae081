"""The one-command main job: materialize, in-process, every asset whose computation exists.

Each asset (each base_model cell) is its own run on the persistent instance, so `dagster dev`
shows the same history; assets that are up to date (materialized, not unsynced, files on disk)
are skipped. sft_model and eval_report run for the preset's chat_cells only (each is one more
training run and evaluation); the other cells are one click away in the UI.
"""
from __future__ import annotations

from pathlib import Path

import dagster as dg

from nanochat_core.common import settings
from nanochat_core.synthetic.generate import default_output
from nanochat_pipeline.assets.data import corpus_file, tokenizer_files
from nanochat_pipeline.assets.scaling import results_csv
from nanochat_pipeline.staleness import needs_run, stale_resolver

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
    if asset in ("base_model", "sft_model", "eval_report"):
        from nanochat_pipeline.partitions import cell_from_key, grid_partitions
        tag = cell_from_key(grid_partitions(preset), partition).model_tag
        return [{"base_model": settings.base_checkpoints_dir(root) / tag,
                 "sft_model": settings.chatsft_checkpoints_dir(root) / tag,
                 "eval_report": settings.report_dir(root) / tag / "report.md"}[asset]]
    if asset == "scaling_results":
        return [results_csv(preset)]
    return []


def run_main_job(defs: dg.Definitions, preset, instance: dg.DagsterInstance, log=print) -> int:
    """Materialize what is missing or unsynced; return 0 on success, 1 on the first failure."""
    assets = list(defs.assets)
    graph = defs.resolve_asset_graph()

    def up_to_date(asset: str, partition: str | None = None) -> bool:
        resolver = stale_resolver(graph, instance)  # fresh each time: earlier steps change the answer
        return (not needs_run(resolver, dg.AssetKey(asset), partition)
                and all(p.exists() for p in artifact_paths(preset, asset, partition)))

    def materialize(asset: str, partition: str | None = None) -> bool:
        label = asset + (f"[{partition}]" if partition else "")
        if up_to_date(asset, partition):
            log(f"  {label}: up to date, skipped")
            return True
        log(f"  {label}: materializing ...")
        result = dg.materialize(assets, selection=[asset], partition_key=partition, instance=instance, resources=defs.resources,
                                raise_on_error=False, tags={"nanochat/main_job": preset.name})
        if not result.success:
            failure = next((e.event_specific_data.error.message.strip() for e in result.all_events
                            if e.is_step_failure and e.event_specific_data.error), "see the run's log")
            log(f"  {label}: FAILED (run {result.run_id}): {failure}")
            return False
        log(f"  {label}: done (run {result.run_id})")
        return True

    log(f"preset {preset.name} ({preset.path}); artifacts under {preset.root}")
    for asset in UNPARTITIONED_ORDER:
        if not materialize(asset):
            return 1
    partitions = graph.get(dg.AssetKey("base_model")).partitions_def
    for cell in partitions.get_partition_keys():
        if not materialize("base_model", cell):
            return 1
    if not materialize("scaling_results"):
        return 1
    for cell in preset.chat_cells:
        for asset in ("sft_model", "eval_report"):
            if not materialize(asset, cell):
                return 1
    log(f"results: {results_csv(preset)}")
    log(f"checkpoints: {settings.base_checkpoints_dir(preset.root)}, {settings.chatsft_checkpoints_dir(preset.root)}")
    log(f"report cards: {settings.report_dir(preset.root)}/<tag>/report.md")
    log(f"history: {instance.root_directory} (open it with `dagster dev -w workspace.yaml`, same DAGSTER_HOME)")
    return 0
