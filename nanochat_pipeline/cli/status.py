"""`python -m nanochat_pipeline status [--preset P]`: where a preset's pipeline stands, read from the
instance. Nothing is started and nothing is written (with no instance yet, every asset shows missing).

It shows the data assets, the depth x FLOP-budget grid of base_model (each cell's val_bpb, or why it
has none: missing, unsynced, a failed blocking check, a failed run, running), the scaling verdict,
and the chat cells (sft_model, rl_model, eval_report) with their key numbers. The states are the
ones the main job acts on: the same stale-status resolver and blocking-check reading (staleness.py),
the same files that must still be on disk (main_job.artifact_paths).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

GRID_ASSET = "base_model"
CHAT_ASSETS = ("sft_model", "rl_model", "eval_report")
PLAN_HISTORY = 10_000  # planned materializations read per asset (newest first): more than any grid has cells
CHECK_HISTORY = 10_000  # failed evaluations read per blocking check (newest first): more than any grid has cells
UP_TO_DATE, MISSING, UNSYNCED, CHECK_FAILED, RUNNING, QUEUED, GONE = (
    "up to date", "missing", "unsynced", "check failed", "running", "queued", "files gone")


def in_progress_statuses():
    import dagster as dg

    return {dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
            dg.DagsterRunStatus.STARTED}


@dataclass(frozen=True)
class AssetState:
    state: str            # a word above, or "failed" / "cancelled": its last run, after its last materialization
    metadata: dict = field(default_factory=dict)  # of the latest materialization (empty when none)
    when: float | None = None  # that materialization's time (seconds since the epoch)
    why: str = ""         # the cause: unsynced's root causes, the failed check's words, the files gone, the run


def add_command(sub) -> None:
    status = sub.add_parser("status", help="the grid's and every asset's state, read from the instance "
                                           "(starts nothing)")
    status.add_argument("--preset", default=None,
                        help="shipped preset name or TOML file; default $NANOCHAT_PRESET or demo")


def run_status(preset_name: str | None, whole_process: bool = False) -> int:
    """The status command. When it is the whole process (`python -m nanochat_pipeline status`) it is
    short-lived and allocates little besides the modules it imports, so the cyclic garbage collector
    only costs it time: importing Dagster triggers collections over an ever larger heap, and the
    interpreter's collection at exit walks every imported module's objects (together 0.7-1.0 s of
    2.6-3.2 s on the finished demo). Then the collector is off for the command and what exists is
    frozen at the end, which the collection at exit skips (re-enabling it brings that cost back).
    An in-process caller keeps its collector."""
    import gc

    if not whole_process:
        return _run_status(preset_name)
    gc.disable()
    try:
        return _run_status(preset_name)
    finally:
        gc.freeze()


def _run_status(preset_name: str | None) -> int:
    from nanochat_pipeline.presets import DEFAULT_PRESET, PRESET_ENV, PresetError, load_preset

    name = preset_name or os.environ.get(PRESET_ENV) or DEFAULT_PRESET
    try:
        load_preset(name)
    except PresetError as e:
        print(f"nanochat_pipeline: error: {e}", file=sys.stderr)
        return 2
    os.environ[PRESET_ENV] = name  # the definitions read it, as for `run`
    import warnings

    import dagster as dg

    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    from nanochat_pipeline import definitions

    home = instance_home()
    if not (home / "dagster.yaml").is_file():  # never create an instance just to look at it
        print(f"instance: none at {home} yet (nothing has run); every asset is missing", flush=True)
        with dg.DagsterInstance.ephemeral() as instance:
            print(render(read_status(definitions.defs, definitions.preset, instance)))
        return 0
    from nanochat_pipeline.instance.storage import InstanceConfigError, preflight

    try:
        storage = preflight(home)
    except InstanceConfigError as e:
        print(f"nanochat_pipeline: error: {e}", file=sys.stderr)
        return 2
    os.environ["DAGSTER_HOME"] = str(home)
    print(f"instance: {storage}", flush=True)
    with dg.DagsterInstance.get() as instance:
        print(render(read_status(definitions.defs, definitions.preset, instance)))
    return 0


def instance_home() -> Path:
    """DAGSTER_HOME, else where `run` puts it (instance.home.ensure_dagster_home, without creating it)."""
    from nanochat_core.common import settings

    return Path(os.environ.get("DAGSTER_HOME") or settings.base_dir() / "pipeline" / "dagster_home").expanduser()


def declared_cells(preset) -> set[str]:
    """The cells someone asked for: the preset's depths x budgets and the scaling ladder's cells. The
    grid's partitions are the product of every depth and budget, so a depth the ladder added for one
    budget is also a partition of every other budget; those extra cells are marked in the table."""
    from nanochat_pipeline.partitions import declared_cells as declared  # the one definition the schedule uses

    return set(declared(preset))


@dataclass
class Status:
    preset: object
    data: dict[str, AssetState]          # unpartitioned assets, in the main job's order
    depths: list[str]
    budgets: list[str]
    cells: dict[str, AssetState]         # base_model by partition key
    declared: set[str]
    verdict: str
    chat: list[tuple[str, str, AssetState]]  # (cell, asset, state)


def read_status(defs, preset, instance) -> Status:
    import dagster as dg

    from nanochat_pipeline.presets.paths import results_csv
    from nanochat_pipeline.cli.main_job import UNPARTITIONED_ORDER
    from nanochat_pipeline.cli.run_records import scaling_verdict

    reader = StateReader(defs, preset, instance)
    grid = reader.graph.get(dg.AssetKey(GRID_ASSET)).partitions_def
    dims = {d.name: d.partitions_def.get_partition_keys() for d in grid.partitions_defs}
    data = {asset: reader.state(asset) for asset in (*UNPARTITIONED_ORDER, "scaling_results")}
    cells = {cell: reader.state(GRID_ASSET, cell) for cell in grid.get_partition_keys()}
    chat = []
    for cell in preset.chat_cells:
        for asset in CHAT_ASSETS:
            state = reader.state(asset, cell)
            if asset != "rl_model" or cell in preset.rl_cells or state.state != MISSING:
                chat.append((cell, asset, state))
    verdict = scaling_verdict(instance, results_csv(preset).parent / "fit.json")
    return Status(preset, data, dims["depth"], dims["flops"], cells, declared_cells(preset), verdict, chat)


class StateReader:
    """Each asset's (and cell's) state from one stale-status resolver, its latest materialization and
    the run that last planned to materialize it (running, queued, failed or cancelled since)."""

    def __init__(self, defs, preset, instance):
        from nanochat_pipeline.staleness import stale_resolver

        self.preset, self.instance = preset, instance
        self.graph = defs.resolve_asset_graph()
        self.resolver = stale_resolver(self.graph, instance)
        # one read of every asset's record, not one per asset
        self.resolver.instance_queryer.prefetch_asset_records(self.graph.get_all_asset_keys())
        self.failed_checks = self._failed_blocking_checks()
        self.plans: dict = {}  # asset key -> _latest_plans

    def _failed_blocking_checks(self) -> dict:
        """Materialization storage id -> "its last blocking check <name> failed: <what it said>", for every
        materialization a blocking check failed on. staleness.failed_blocking_check asks the same per
        asset, but from the materializing run's own events: on SQLite each run's events are a database of
        their own, and opening one costs about a tenth of a second, too slow for a whole grid. One read
        of each blocking check's failures answers for every cell at once."""
        import dagster as dg
        from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

        from nanochat_pipeline.staleness import check_message

        storage, found = self.instance.event_log_storage, {}
        for key in self.graph.asset_check_keys:
            if not self.graph.get_check_spec(key).blocking:
                continue
            for record in storage.get_asset_check_execution_history(
                    key, limit=CHECK_HISTORY, status={AssetCheckExecutionRecordStatus.FAILED}):
                evaluation = record.event.dagster_event.event_specific_data if record.event else None
                target = getattr(evaluation, "target_materialization_data", None)
                if evaluation is None or evaluation.severity != dg.AssetCheckSeverity.ERROR:
                    continue  # a WARN result never blocks, in Dagster either
                # the materialization it judged; without one recorded, the run's
                where = target.storage_id if target is not None else ("run", record.run_id)
                found.setdefault(where, f"its last blocking check {evaluation.check_name} failed: "
                                        f"{check_message(evaluation)}")
        return found

    def _latest_plans(self, key) -> dict:
        """partition (None for an unpartitioned asset) -> the storage id and run of the latest run that
        planned to materialize it (Dagster records the plan when it creates the run): one read per asset."""
        import dagster as dg

        if key in self.plans:
            return self.plans[key]
        plans = self.plans[key] = {}
        for record in self.instance.fetch_planned_materializations(dg.AssetRecordsFilter(asset_key=key),
                                                                   limit=PLAN_HISTORY).records:
            plans.setdefault(record.event_log_entry.dagster_event.partition, (record.storage_id, record.run_id))
        return plans

    def last_planned_run(self, key, partition: str | None, after: int | None):
        """The run record of the latest run that planned to materialize `key` (`partition`) after the
        materialization with storage id `after`, or None."""
        plan = self._latest_plans(key).get(partition)
        if plan is None or (after is not None and plan[0] < after):
            return None
        return self.instance.get_run_record_by_id(plan[1])

    def state(self, asset: str, partition: str | None = None) -> AssetState:
        import dagster as dg
        from dagster._core.definitions.data_version import StaleStatus
        from dagster._core.definitions.events import AssetKeyPartitionKey

        from nanochat_pipeline.cli.failure_line import run_failure_line
        from nanochat_pipeline.cli.main_job import artifact_paths

        key = dg.AssetKey(asset)
        status = self.resolver.get_status(key, partition)
        # the record get_status just read (the resolver's queryer caches it): no second query
        latest = self.resolver.instance_queryer.get_latest_materialization_or_observation_record(
            AssetKeyPartitionKey(key, partition))
        materialization = latest.asset_materialization if latest is not None else None
        metadata = dict(materialization.metadata) if materialization is not None else {}
        when = latest.timestamp if materialization is not None else None
        storage_id = latest.storage_id if materialization is not None else None
        record = self.last_planned_run(key, partition, storage_id)
        run = record.dagster_run if record is not None else None
        if run is not None and run.status in in_progress_statuses():
            word = RUNNING if run.status in (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED) else QUEUED
            return AssetState(word, metadata, when, f"run {run.run_id[:8]} ({run.status.value.lower()})")
        failed = (self.failed_checks.get(storage_id) or self.failed_checks.get(("run", latest.run_id))
                  if storage_id is not None else None)
        if failed:
            return AssetState(CHECK_FAILED, metadata, when, failed)
        if run is not None and run.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
            word = "cancelled" if run.status == dg.DagsterRunStatus.CANCELED else "failed"
            why = f"run {run.run_id[:8]}: {run_failure_line(self.instance, run.run_id)}"
            return AssetState(word, metadata, when, why)
        if status == StaleStatus.MISSING:
            return AssetState(MISSING, metadata, when)
        if status == StaleStatus.STALE:
            causes = self.resolver.get_stale_root_causes(key, partition)
            why = "; ".join(f"{c.key.asset_key.to_user_string()} {c.reason}" for c in causes)
            return AssetState(UNSYNCED, metadata, when, why or "an upstream or code version changed")
        gone = [str(p) for p in artifact_paths(self.preset, asset, partition) if not p.exists()]
        if gone:
            return AssetState(GONE, metadata, when, "missing on disk: " + ", ".join(gone))
        return AssetState(UP_TO_DATE, metadata, when)


def cell_text(state: AssetState) -> str:
    """One grid cell: its val_bpb, with the state beside it unless up to date."""
    from nanochat_pipeline.checks import metadata_number  # dagster: not at load, so `--help` stays light

    bpb = metadata_number(state.metadata, "val_bpb")
    if state.state == UP_TO_DATE:
        return f"{bpb:.4f}" if bpb is not None else "done"
    if state.state == UNSYNCED and bpb is not None:
        return f"{bpb:.4f} unsynced"
    return state.state


def when_text(when: float | None) -> str:
    return datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:%M") if when is not None else ""


def render(status: Status) -> str:
    from io import StringIO

    from rich.box import SIMPLE_HEAD
    from rich.console import Console
    from rich.table import Table

    from nanochat_pipeline.cli.terminal import key_metric

    out = StringIO()
    console = Console(file=out, width=120, force_terminal=False, no_color=True, highlight=False)

    def say(text: str) -> None:  # a line as it is (rich would wrap a long cause at the console's width)
        out.write(text + "\n")

    p = status.preset
    say(f"preset {p.name} ({p.path}); artifacts under {p.root}")

    def table(*columns):
        t = Table(box=SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for column in columns:
            t.add_column(column, overflow="fold")
        return t

    data = table("asset", "state", "key number", "materialized")
    for asset, s in status.data.items():
        if asset != "scaling_results":
            data.add_row(asset, s.state, key_metric(asset, s.metadata), when_text(s.when))
    say("\ndata")
    console.print(data)

    counts: dict[str, int] = {}
    for s in status.cells.values():
        counts[s.state] = counts.get(s.state, 0) + 1
    say(f"\nbase_model: val_bpb per cell, depth x FLOP budget ({len(status.cells)} cells: "
                  + ", ".join(f"{n} {word}" for word, n in counts.items()) + ")")
    grid = table("depth", *status.budgets)
    undeclared = False
    for depth in status.depths:
        row = []
        for budget in status.budgets:
            cell = f"{depth}|{budget}"
            mark = "" if cell in status.declared else " *"
            undeclared |= bool(mark)
            row.append(cell_text(status.cells[cell]) + mark)
        grid.add_row(depth, *row)
    console.print(grid)
    if undeclared:
        say("  * in the grid (another cell's depth or budget) but declared by neither the preset nor the ladder")
    for cell, s in status.cells.items():
        if s.why and s.state != UP_TO_DATE:
            say(f"  {cell} {s.state}: {s.why}")

    scaling = status.data["scaling_results"]
    say(f"\nscaling_results: {scaling.state}" + (f" ({scaling.why})" if scaling.why else "")
                  + (f", {when_text(scaling.when)}" if scaling.when else ""))
    say(f"scaling: {status.verdict}")

    if status.chat:
        chat = table("cell", "asset", "state", "key numbers", "materialized")
        for cell, asset, s in status.chat:
            chat.add_row(cell, asset, s.state, key_metric(asset, s.metadata) if s.metadata else "", when_text(s.when))
        say("\nchat cells")
        console.print(chat)
    others = [(name, s) for name, s in status.data.items() if s.why and s.state != UP_TO_DATE]
    others += [(f"{asset}[{cell}]", s) for cell, asset, s in status.chat if s.why and s.state != UP_TO_DATE]
    for name, s in others:
        say(f"  {name} {s.state}: {s.why}")
    return out.getvalue().rstrip()
