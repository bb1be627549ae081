"""Which assets (and grid cells) need a run, and which must not be consumed.

An asset needs a run when it was never materialized, when it is unsynced with its upstream, or when
its latest materialization failed one of its blocking checks: Dagster records the materialization
even then, so "materialized and in sync" alone would call a failed tokenizer up to date and train
every cell on it. The main job, the schedule and (through all_deps_blocking_checks_passed) the
automation sensor all read the same answer from the instance.

The automation conditions the assets declare live here too (they are the sensor's side of the same
question), with the upstream-files check an asset makes before it reads what another one wrote.
"""
from __future__ import annotations

from pathlib import Path

import dagster as dg
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.events import DagsterEventType
from dagster._time import get_current_datetime

NEVER_MATERIALIZED = "never materialized"  # run_reason for an asset or cell with no materialization


def stale_resolver(asset_graph, instance: dg.DagsterInstance) -> CachingStaleStatusResolver:
    """The resolver behind the UI's "Unsynced" labels (dagster has no public API for it; this is
    how dagster's own data-version test helper builds one)."""
    view = AssetGraphView(temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
                          instance=instance, asset_graph=asset_graph)
    return CachingStaleStatusResolver(instance=instance, asset_graph=asset_graph, loading_context=view)


def needs_run(resolver: CachingStaleStatusResolver, key: dg.AssetKey, partition: str | None = None) -> bool:
    """MISSING (never materialized) or STALE (an upstream's data or a code version changed)."""
    return resolver.get_status(key, partition) != StaleStatus.FRESH


def failed_blocking_check(asset_graph, instance: dg.DagsterInstance, key: dg.AssetKey,
                          partition: str | None = None) -> str | None:
    """Why the latest materialization of `key` (its `partition`) must not be consumed: "its last
    blocking check <name> failed: <what it said>", or None when every blocking check of that
    materialization passed (or none ran). Only the checks evaluated with that materialization
    count: a new materialization clears an older failure."""
    blocking = {k for k in asset_graph.get(key).check_keys if asset_graph.get_check_spec(k).blocking}
    return failed_check_among(instance, key, partition, blocking)


def failed_check_among(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None,
                       blocking: set[dg.AssetCheckKey]) -> str | None:
    """failed_blocking_check with the blocking checks given (an asset body has no asset graph)."""
    f = dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None)
    latest = instance.fetch_materializations(f, limit=1).records
    if not latest:
        return None
    # The checks are evaluated in the materializing run. Read them from that run's events, not from a
    # check's history: a check of a partitioned asset is itself unpartitioned here, so its history
    # mixes every cell.
    events = instance.event_log_storage.get_records_for_run(
        latest[0].run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records
    for event in events:
        evaluation = event.event_log_entry.dagster_event.event_specific_data
        target = evaluation.target_materialization_data
        if (evaluation.asset_check_key not in blocking or evaluation.passed
                or evaluation.severity != dg.AssetCheckSeverity.ERROR  # a WARN result never blocks, in Dagster either
                or (target is not None and target.storage_id != latest[0].storage_id)):
            continue
        return f"its last blocking check {evaluation.check_name} failed: {check_message(evaluation)}"
    return None


def require_checks_passed(consumer: str, instance: dg.DagsterInstance, producer_checks: list[dg.AssetCheckSpec],
                          partition: str | None = None) -> None:
    """Fail `consumer` at its start when the latest materialization of its upstream failed one of
    `producer_checks` (blocking ones). Dagster stops a consumer only in the run where the check
    failed; a later launch from the UI, a backfill or a sensor would otherwise train on it."""
    key = producer_checks[0].asset_key
    reason = failed_check_among(instance, key, partition, {spec.key for spec in producer_checks if spec.blocking})
    if reason:
        name = key.to_user_string()
        raise dg.Failure(f"{consumer}: upstream {name}{f'[{partition}]' if partition else ''}: {reason}. "
                         f"Materialize `{name}` again, passing its checks, first.")


def check_message(evaluation) -> str:
    """The check's own description, else its metadata as `key=value` pairs."""
    if evaluation.description:
        return evaluation.description
    return ", ".join(f"{k}={getattr(v, 'value', v)}" for k, v in evaluation.metadata.items()) or "(no details)"


def run_reason(asset_graph, instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None = None,
               resolver: CachingStaleStatusResolver | None = None) -> str | None:
    """Why `key` (`partition`) needs a run, or None when it is up to date and its checks passed.
    `resolver`: one shared by several questions asked while nothing was materialized (it caches what it read)."""
    resolver = resolver or stale_resolver(asset_graph, instance)
    status = resolver.get_status(key, partition)
    if status == StaleStatus.MISSING:
        return NEVER_MATERIALIZED
    if status == StaleStatus.STALE:
        causes = resolver.get_stale_root_causes(key, partition)
        return "unsynced: " + ("; ".join(f"{c.key.asset_key.to_user_string()} {c.reason}" for c in causes)
                               if causes else "an upstream or code version changed")
    return failed_blocking_check(asset_graph, instance, key, partition)


def blocked_upstream(asset_graph, instance: dg.DagsterInstance, key: dg.AssetKey) -> str | None:
    """'<parent>: its last blocking check ... failed: ...' for the first unpartitioned parent of
    `key` whose latest materialization failed a blocking check, else None."""
    for parent in sorted(asset_graph.get(key).parent_keys, key=lambda k: k.to_user_string()):
        if asset_graph.get(parent).partitions_def is not None:
            continue  # a partitioned parent is judged per partition by its own caller
        reason = failed_blocking_check(asset_graph, instance, parent)
        if reason:
            return f"{parent.to_user_string()}: {reason}"
    return None


def plan_cells(asset_graph, instance: dg.DagsterInstance, partitions,
               key: dg.AssetKey = dg.AssetKey("base_model")) -> tuple[list[str], dict[str, str]]:
    """(cells to run, {cell: why it is skipped although not simply up to date}).

    A cell runs when it is missing or unsynced and no upstream failed its blocking checks. A cell
    whose latest run failed its own checks for the same code and data (still in sync) is skipped:
    running it again would fail the same way; a change upstream or in code makes it unsynced again."""
    resolver = stale_resolver(asset_graph, instance)
    upstream = blocked_upstream(asset_graph, instance, key)
    run, skipped = [], {}
    for cell in partitions.get_partition_keys():
        if needs_run(resolver, key, cell):
            if upstream:
                skipped[cell] = f"not run: upstream {upstream}"
            else:
                run.append(cell)
            continue
        failed = failed_blocking_check(asset_graph, instance, key, cell)
        if failed:
            skipped[cell] = f"not run again for the same code and data: {failed}"
    return run, skipped


# Never consume an upstream whose latest blocking check failed (Dagster records the materialization
# anyway); a new, passing materialization of it lifts the gate.
AUTOMATION = ((dg.AutomationCondition.eager() | dg.AutomationCondition.code_version_changed())
              & dg.AutomationCondition.all_deps_blocking_checks_passed())

class InDeclaredCells(dg.AutomationCondition):
    """True for the partitions among `cells` (the declared cells), false for every other partition."""

    def __init__(self, cells: list[str]):
        self.cells = frozenset(cells)

    @property
    def requires_cursor(self) -> bool:
        return False  # a pure function of the candidate partitions

    @property
    def description(self) -> str:
        return f"one of the {len(self.cells)} declared cells (the preset's grid and the ladder's cells)"

    @property
    def name(self) -> str:
        return "in_declared_cells"

    def evaluate(self, context):
        partitions = context.partitions_def
        keys = {k for k in self.cells if partitions is not None and partitions.has_partition_key(k)}
        subset = context.asset_graph_view.compute_intersection_with_partition_keys(keys, context.candidate_subset)
        return dg.AutomationResult(context, true_subset=subset)


def declared_only(condition: dg.AutomationCondition, cells: list[str]) -> dg.AutomationCondition:
    """`condition`, for the declared cells only."""
    return (condition & InDeclaredCells(cells)).with_label("eager, declared cells only")

def require_files(what: str, paths: list[Path], producer: str) -> None:
    """Fail with a message naming the missing file and the asset that makes it."""
    import dagster as dg

    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise dg.Failure(f"{what}: missing on disk: {', '.join(missing)}. Materialize `{producer}` again to rebuild it.")

def latest_metadata(instance: dg.DagsterInstance, asset: str, partition: str | None) -> dict:
    """The metadata of the latest materialization (an up-to-date asset's key metric)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None),
        limit=1).records
    return dict(records[0].asset_materialization.metadata) if records else {}
