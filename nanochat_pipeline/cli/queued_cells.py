"""Grid cells side by side, through Dagster's own queue: each cell is a queued run of scaling_grid_job,
and the instance's daemon (QueuedRunCoordinator, pools at run granularity) starts as many at once as
the `training` pool's limit allows; the main job submits them, follows them and reports each as it ends.

The main job starts its own daemon for as long as it runs and stops it after. Not one it finds: a
daemon's heartbeat comes every 30 s and outlives it, so a stopped one looks alive for a while (seen:
a rerun 10 s after an interrupted one queued its cells for a daemon that was gone). A `dg dev` open on
the same DAGSTER_HOME runs a second daemon; Dagster's dequeue skips a run that is no longer QUEUED,
and both load the same workspace.yaml (the same NANOCHAT_PRESET is then needed in both). The runs
are the ones a UI backfill makes (the same job, partition tags and run worker).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import yaml

FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
RUNNING = {dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED}
POLL_EVERY = 0.5
STOP_WAIT_S = 20  # a cancelled run's worker and child get this long to save and end


def workspace_location(workspace_yaml: Path) -> tuple[str, str]:
    """(module_name, location_name) of workspace.yaml's one python_module: what the daemon loads."""
    [entry] = yaml.safe_load(workspace_yaml.read_text(encoding="utf-8"))["load_from"]
    return entry["python_module"]["module_name"], entry["python_module"]["location_name"]


def queue_is_usable(instance: dg.DagsterInstance) -> bool:
    """Runs submitted to this instance wait in the queue (a dagster.yaml may name another coordinator)."""
    from dagster._core.run_coordinator import QueuedRunCoordinator

    return isinstance(instance.run_coordinator, QueuedRunCoordinator)


class Daemon:
    """`dagster-daemon run` on this instance (DAGSTER_HOME) and workspace, its output in log_dir."""

    def __init__(self, workspace_yaml: Path, log_dir: Path):
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"daemon_{datetime.now(timezone.utc):%Y%m%d_%H%M%S}.log"
        with open(self.log_path, "a", encoding="utf-8") as log:
            # its own session: Ctrl-C at the terminal reaches the main job, which cancels the runs itself
            self.proc = subprocess.Popen([sys.executable, "-m", "dagster._daemon", "run", "-w", str(workspace_yaml)],
                                         cwd=workspace_yaml.parent, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if not self.alive():
            return
        # SIGINT: the daemon shuts its code server down itself (SIGKILL would leave it running ~20 s)
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def longest_first(partitions_def, cells: list[str]) -> list[str]:
    """The order in which the queue should start `cells`, longest first, so that short cells fill the slots
    at the end instead of one long cell training alone while the other slots idle (seen in the grid's own
    order: the demo's d4 at 2.5e11 trained alone for the last 18 s of a 124 s grid). The largest budget
    first (a cell's budget is its training FLOPs); within one budget the shallowest, which takes the most
    steps (tokens = budget / (6 x params)), and on a CPU the small models pay per step."""
    from nanochat_pipeline.partitions import cell_from_key

    def largest_budget_then_most_steps(key: str) -> tuple[float, int]:
        cell = cell_from_key(partitions_def, key)
        return -cell.target_flops, cell.depth

    return sorted(cells, key=largest_budget_then_most_steps)


def submit_cells(instance: dg.DagsterInstance, workspace_yaml: Path, job_name: str, partitions_def,
                 cells: list[str], tags: dict) -> dict[str, str]:
    """One queued run per cell, built as the `dagster job backfill` command builds them (the job's
    snapshot and execution plan from the code location, the partition's tags); returns {run_id: cell}.
    The location is loaded in this process (its definitions are already imported) under the name the
    daemon's workspace gives it, so the daemon's code server runs the same module."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget

    module, location_name = workspace_location(workspace_yaml)
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(executable_path=sys.executable, module_name=module,
                             working_directory=str(workspace_yaml.parent)), location_name=location_name)
    cancel_left_behind(instance, job_name, cells, tags)
    runs = {}
    with WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as process_context:
        workspace = process_context.create_request_context()
        location = workspace.get_code_location(location_name)
        [repo] = location.get_repositories().values()
        remote_job = repo.get_full_job(job_name)
        plan = location.get_execution_plan(remote_job, {}, step_keys_to_execute=None, known_state=None,
                                           instance=instance).execution_plan_snapshot
        for cell in cells:
            run = instance.create_run(
                job_name=job_name, run_id=None, run_config={}, resolved_op_selection=None,
                step_keys_to_execute=plan.step_keys_to_execute, op_selection=None, status=None,
                root_run_id=None, parent_run_id=None,
                tags={**remote_job.tags, **tags, **partitions_def.get_tags_for_partition_key(cell)},
                job_snapshot=remote_job.job_snapshot, execution_plan_snapshot=plan,
                parent_job_snapshot=remote_job.parent_job_snapshot,
                remote_job_origin=remote_job.get_remote_origin(), job_code_origin=remote_job.get_python_origin(),
                asset_selection=None, asset_check_selection=None, asset_graph=repo.asset_graph)
            instance.submit_run(run.run_id, workspace)
            runs[run.run_id] = cell
    return runs


def cancel_left_behind(instance: dg.DagsterInstance, job_name: str, cells: list[str], tags: dict) -> None:
    """Queued runs of these cells that an earlier main job submitted and never saw start (it was killed):
    cancelled, or this job's daemon would train those cells twice."""
    left = instance.get_runs(dg.RunsFilter(job_name=job_name, statuses=[dg.DagsterRunStatus.QUEUED], tags=tags))
    for run in left:
        if run.tags.get("dagster/partition") in cells:
            instance.report_run_canceled(run, message="cancelled by a newer main job that queues this cell again")


@dataclass
class Follower:
    """Which of the submitted runs have started and ended, read from the instance every POLL_EVERY s."""

    instance: dg.DagsterInstance
    runs: dict[str, str]  # run_id -> cell
    started: set[str] = field(default_factory=set)
    ended: set[str] = field(default_factory=set)

    def changes(self) -> tuple[list[str], list[tuple[str, object]]]:
        """(run ids that started since the last call, [(run id, RunRecord)] that ended since), in submit order.
        A run that ended before it was seen running counts as started too (unless it was cancelled queued)."""
        pending = [run_id for run_id in self.runs if run_id not in self.ended]
        records = {r.dagster_run.run_id: r for r in
                   self.instance.get_run_records(dg.RunsFilter(run_ids=pending))} if pending else {}
        new_started, new_ended = [], []
        for run_id in pending:
            record = records.get(run_id)
            if record is None:
                continue
            status = record.dagster_run.status
            if run_id not in self.started and (status in RUNNING or status in FINISHED and record.start_time):
                self.started.add(run_id)
                new_started.append(run_id)
            if status in FINISHED:
                self.ended.add(run_id)
                new_ended.append((run_id, record))
        return new_started, new_ended

    def cancel(self, only_queued: bool) -> None:
        """Cancel what has not ended: queued runs at once; started ones (unless only_queued) through the
        run launcher, which asks their code server to interrupt the step (the child saves a checkpoint)."""
        for run_id in self.runs:
            if run_id in self.ended:
                continue
            run = self.instance.get_run_by_id(run_id)
            if run is None or run.is_finished:
                continue
            if run.status == dg.DagsterRunStatus.QUEUED or run.status == dg.DagsterRunStatus.NOT_STARTED:
                self.instance.report_run_canceled(run)
            elif not only_queued:
                try:
                    self.instance.run_launcher.terminate(run_id)
                except Exception as e:  # a code server already gone: the run monitor ends the run
                    self.instance.report_engine_event(f"cancelling from the main job: {e}", run)
