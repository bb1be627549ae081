"""Several workers on one PostgreSQL instance: the real daemon (queued run coordinator) launches each
cell's run in its own worker process, and the `training` pool's limit (NANOCHAT_TRAINING_SLOTS, kept
in the database) decides how many train at once; a worker killed mid-cell leaves the rest intact."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from nanochat_pipeline.children import TRAIN_CHILD_MODULE
from nanochat_pipeline.instance.home import ensure_training_pool
from helpers import DATA_ASSETS, materialize, stop_process_group, tiny_defs, wait_until, write_tiny_preset

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
TERMINAL = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def queue_cells(cells: list[str]) -> None:
    """One queued run per cell, as a UI backfill makes them; the running daemon launches them."""
    subprocess.run([sys.executable, "-m", "dagster", "job", "backfill", "-w", "workspace.yaml", "-j", "scaling_grid_job",
                    "--partitions", ",".join(cells), "--noprompt"], cwd=REPO, check=True, capture_output=True)


def start_daemon(log_path: Path) -> subprocess.Popen:
    with open(log_path, "w") as log:
        return subprocess.Popen([sys.executable, "-m", "dagster._daemon", "run", "-w", "workspace.yaml"], cwd=REPO,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_daemon(proc: subprocess.Popen, home: Path) -> None:
    stop_process_group(proc)  # our own process group only
    # The daemon's code server runs in a session of its own and outlived it (seen here, with a killed
    # run worker): end the ones serving this test's instance, by pid.
    for pid, (_, cmd) in processes().items():
        if "dagster api grpc" in cmd and str(home) in cmd:
            os.kill(pid, signal.SIGKILL)


def cell_records(instance) -> dict:
    return {r.dagster_run.tags["dagster/partition"]: r for r in instance.get_run_records(
        dg.RunsFilter(job_name="scaling_grid_job"))}


def why_not_success(instance, records: dict, daemon_log: Path) -> str:
    """For an assertion message: each run that did not succeed, its error events, and the daemon's last lines
    (a CI failure must say why without a rerun)."""
    lines = []
    for cell, record in records.items():
        if record.dagster_run.status == dg.DagsterRunStatus.SUCCESS:
            continue
        lines.append(f"{cell}: {record.dagster_run.status.value}")
        for entry in instance.all_logs(record.dagster_run.run_id):
            event = entry.dagster_event
            error = getattr(event.event_specific_data, "error", None) if event else None
            if entry.level >= 40 or error is not None or (
                    event and event.event_type_value in ("ENGINE_EVENT", "PIPELINE_FAILURE")):
                when = time.strftime("%H:%M:%S", time.gmtime(entry.timestamp))
                lines.append(f"  {when} {entry.user_message}" + (f"\n  {error.to_string()}" if error else ""))
    tail = daemon_log.read_text(errors="replace").splitlines()[-40:] if daemon_log.exists() else []
    return "\n".join(lines + ["daemon log, last lines:"] + tail)


def timeline(instance, records: dict) -> str:
    """Each cell's run: status and when it was queued, launched, started and ended (for failure messages)."""
    kinds = ("PIPELINE_ENQUEUED", "PIPELINE_STARTING", "PIPELINE_START", "PIPELINE_SUCCESS", "PIPELINE_FAILURE",
             "PIPELINE_CANCELED")
    lines = []
    for cell, record in sorted(records.items()):
        events = [(e.timestamp, e.dagster_event.event_type_value.replace("PIPELINE_", ""))
                  for e in instance.all_logs(record.dagster_run.run_id)
                  if e.dagster_event and e.dagster_event.event_type_value in kinds]
        lines.append(f"{cell}: {record.dagster_run.status.value}: " + ", ".join(
            f"{kind} {time.strftime('%H:%M:%S', time.gmtime(t))}" for t, kind in events))
    return "\n".join(lines)


def processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process we can see."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            found[int(entry.name)] = (ppid, cmdline)
    return found


def training_children(tags: list[str]) -> dict[str, int]:
    """model tag -> training child pid, for the cells training right now."""
    return {tag: pid for pid, (_, cmd) in processes().items() for tag in tags
            if TRAIN_CHILD_MODULE in cmd and f"--model-tag {tag}" in cmd}


def worker_chain(child: int) -> list[int]:
    """The run worker above a training child, then every process down to it. The daemon's default run
    launcher asks the code server (`dagster api grpc`) to start each run: the worker is its child."""
    procs, chain = processes(), [child]
    while "dagster api grpc" not in procs[procs[chain[0]][0]][1]:
        chain.insert(0, procs[chain[0]][0])
        assert chain[0] > 1, "the training child has no code server above it"
    return chain


@pytest.fixture
def grid(pg_home, tmp_path, monkeypatch):
    """Four tiny cells on the Postgres instance, their upstream materialized, the daemon running; the test
    sets the pool limit and queues the cells."""
    # The last two cells train ~5x longer: part 2 needs their children alive at the same moment, and on a
    # busy machine the daemon launched two runs 6 s apart, and 4e9 and 5e9 cells then never overlapped.
    preset_path = write_tiny_preset(tmp_path, flops=("2e9", "3e9", "2e10", "2.5e10"))
    monkeypatch.setenv("NANOCHAT_PRESET", str(preset_path))
    defs, _ = tiny_defs(preset_path)
    with dg.DagsterInstance.get() as instance:
        assert materialize(defs, instance, DATA_ASSETS).success
    daemon = start_daemon(tmp_path / "daemon.log")
    try:
        with dg.DagsterInstance.get() as instance:
            yield instance
    finally:
        stop_daemon(daemon, pg_home[0])


def set_training_slots(instance, monkeypatch, slots: int) -> None:
    """NANOCHAT_TRAINING_SLOTS into the database, as `python -m nanochat_pipeline run` puts it there; the
    running daemon reads the limit from there at each dequeue."""
    monkeypatch.setenv("NANOCHAT_TRAINING_SLOTS", str(slots))
    assert ensure_training_pool(instance) == slots


@pytest.mark.timeout(1800)  # four cells and a daemon: several minutes on a busy 2-core machine
def test_the_training_pool_limit_decides_how_many_cells_train_at_once(grid, monkeypatch, tmp_path):
    """(merged: test_one_training_slot_never_lets_two_cells_overlap and
    test_two_slots_overlap_and_a_killed_worker_leaves_the_rest_intact, which each started a daemon on an
    instance of their own: one instance and daemon here, the limit changed between the two parts)"""
    instance = grid
    # 1. One slot: two queued cells never overlap.
    set_training_slots(instance, monkeypatch, 1)
    queue_cells(["d1|2e9", "d1|3e9"])
    records = wait_until(lambda: (r := cell_records(instance)) and len(r) == 2
                         and all(x.dagster_run.status in TERMINAL for x in r.values()) and r,
                         600, "both cells finished")
    assert {c: r.dagster_run.status for c, r in records.items()} == {"d1|2e9": dg.DagsterRunStatus.SUCCESS,
                                                                    "d1|3e9": dg.DagsterRunStatus.SUCCESS}, \
        timeline(instance, records) + "\n" + why_not_success(instance, records, tmp_path / "daemon.log")
    first, second = sorted((r.start_time, r.end_time) for r in records.values())
    assert first[1] <= second[0], (first, second)  # the second started only once the first had ended
    assert instance.get_materialized_partitions(dg.AssetKey("base_model")) == {"d1|2e9", "d1|3e9"}

    # 2. Two slots: two cells train at the same moment, in two worker processes each with its training child.
    set_training_slots(instance, monkeypatch, 2)
    queue_cells(["d1|2e10", "d1|2.5e10"])

    def both_training():
        children = training_children(["d1_2e10", "d1_2.5e10"])
        if len(children) == 2:
            return children
        runs = cell_records(instance)
        part2 = {c: r for c, r in runs.items() if c in ("d1|2e10", "d1|2.5e10")}
        if len(part2) == 2 and all(r.dagster_run.status in TERMINAL for r in part2.values()):
            pytest.fail("both cells ended without training at the same moment:\n" + timeline(instance, runs) + "\n"
                        + why_not_success(instance, part2, tmp_path / "daemon.log"))
        return None

    both = wait_until(both_training, 600, "both cells training at once", poll=0.2)
    victim = worker_chain(both["d1_2e10"])
    assert victim[0] not in worker_chain(both["d1_2.5e10"])  # two different worker processes
    for pid in victim:  # the machine running this cell dies: its worker, step process and child at once
        os.kill(pid, signal.SIGKILL)

    survivor = wait_until(lambda: (r := cell_records(instance)["d1|2.5e10"]).dagster_run.status in TERMINAL and r,
                          600, "the other cell finished")
    assert survivor.dagster_run.status == dg.DagsterRunStatus.SUCCESS, \
        why_not_success(instance, {"d1|2.5e10": survivor}, tmp_path / "daemon.log")
    killed = cell_records(instance)["d1|2e10"].dagster_run
    assert killed.status not in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.QUEUED)
    # The history written before and beside the kill is all there.
    assert instance.get_materialized_partitions(dg.AssetKey("base_model")) == {"d1|2e9", "d1|3e9", "d1|2.5e10"}
    for asset in DATA_ASSETS:
        assert instance.get_latest_materialization_event(dg.AssetKey(asset)) is not None
    events = [e.dagster_event for e in instance.all_logs(survivor.dagster_run.run_id) if e.dagster_event]
    assert [e.step_key for e in events if e.is_step_success] == ["base_model"]
    data_runs = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS]))
    assert len(data_runs) == 4  # the data assets' run, the two one-slot cells and the surviving cell
