"""Grid cells side by side: the training pool's default limit (cores and cell width), the threads each
cell gets, and the main job training two cells at once as queued runs that its own daemon starts, Ctrl-C
there (each cell keeps a checkpoint, no process is left) and the rerun that resumes both."""
import math
import os
import signal
import time

import dagster as dg
import pytest

from nanochat_pipeline.children.progress import progress_file
from nanochat_pipeline.cli.progress import read_progress
from nanochat_pipeline.cli.slots import preset_default_slots
from nanochat_pipeline.instance import home
from nanochat_pipeline.instance.home import cell_threads_env, default_training_slots, ensure_training_pool
from nanochat_pipeline.presets import load_preset
from helpers import wait_until, write_tiny_preset
from main_job_runs import TINY_CHAT, grid_runs, overlapped, processes_of, run_main_job, start_main_job


def test_default_slots_share_the_cores_by_cell_width():
    assert default_training_slots("cpu", 48, cores=2) == 2  # the demo's widest cell: one thread each
    assert default_training_slots("cpu", 128, cores=2) == 2
    assert default_training_slots("cpu", 129, cores=2) == 1  # two threads wanted: one cell at a time
    assert default_training_slots("cpu", 768, cores=16) == 2  # six threads per cell
    assert default_training_slots("cpu", 4096, cores=4) == 1  # never below one
    assert default_training_slots("cuda", 48, cores=16) == 1  # a cell takes its accelerators
    assert default_training_slots("mps", 48, cores=8) == 1


def test_preset_default_slots(monkeypatch):
    monkeypatch.setattr(home, "available_cores", lambda: 2)
    assert preset_default_slots(load_preset("demo")) == 2  # 48 wide at most
    assert preset_default_slots(load_preset("scaling")) == 1
    monkeypatch.setattr(home, "available_cores", lambda: 1)
    assert preset_default_slots(load_preset("demo")) == 1


def test_pool_limit_and_threads_per_cell(monkeypatch):
    monkeypatch.delenv("NANOCHAT_TRAINING_SLOTS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(home, "available_cores", lambda: 4)
    with dg.instance_for_test() as instance:
        assert cell_threads_env(instance) == {}  # no pool yet: one cell at a time, torch's own threads
        assert ensure_training_pool(instance, default=2) == 2
        assert ensure_training_pool(instance, default=1) == 2  # a limit already there is kept
        assert cell_threads_env(instance) == {"OMP_NUM_THREADS": "2"}
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        assert cell_threads_env(instance) == {}  # the user's own setting stands
        monkeypatch.delenv("OMP_NUM_THREADS")
        monkeypatch.setenv("NANOCHAT_TRAINING_SLOTS", "1")
        assert ensure_training_pool(instance, default=2) == 1
        assert cell_threads_env(instance) == {}


def test_a_cells_environment_needs_no_network_probe(monkeypatch):
    """Each queued cell's run worker is a new process: a probe there would cost every cell up to the probe's
    budget where hosts resolve and never answer. base_train reads only local files."""
    from nanochat_core.common import reachability
    from nanochat_pipeline.assets.training import cell_env
    from nanochat_pipeline.presets import network

    monkeypatch.setattr(network, "_probed", {})  # no answer cached from another test
    monkeypatch.setattr(reachability, "probe", lambda *a, **k: pytest.fail("a cell's environment probed the network"))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(home, "available_cores", lambda: 2)
    demo = load_preset("demo")  # offline = "auto"
    with dg.instance_for_test() as instance:
        ensure_training_pool(instance, default=2)
        assert cell_env(demo, instance) == {"NANOCHAT_BASE_DIR": str(demo.root), "OMP_NUM_THREADS": "1"}


def mid_training(progress: dict | None) -> bool | None:
    """True while a cell's progress says it is well inside its steps, False once it is near or at its end,
    None before its first step."""
    return None if progress is None else progress["step"] < 0.8 * progress["total"]


def last_step_at(progress: dict) -> float:
    """When the cell wrote this progress (its last step, once it has finished)."""
    return progress["started"] + progress["elapsed"]


def signal_dispositions(pid: int) -> str:
    """The process's blocked, ignored and caught signal masks (for a failure message)."""
    status = open(f"/proc/{pid}/status").read().splitlines()
    return " ".join(line.replace("\t", "") for line in status if line.startswith(("SigBlk", "SigIgn", "SigCgt")))


def ctrl_c_mid_training(tmp_path, attempt: int):
    """Start the two-cell grid with SIGINT ignored (as `nohup ... &` from a script, or a CI runner, starts it:
    in three suite runs launched that way the job sailed through the Ctrl-C and finished everything; two
    of them measured it: sent 7-11 s before the cells' last steps) and Ctrl-C its process group while both
    cells are inside their steps.
    Returns (job, output, root, base, preset), or None when this test was too late: it saw a cell near its end
    before it saw both training, or its Ctrl-C went out after both cells had taken their last step (the cells
    take seconds). A Ctrl-C sent while a cell still trains must interrupt: that is asserted."""
    # ~500 and ~600 steps (a cell launched ~3 s before the other once reached its last step before the
    # other began, in CI: then it trained afresh on resume, by design)
    folder = tmp_path / f"attempt{attempt}"
    folder.mkdir()
    preset = write_tiny_preset(folder, flops=("2e10", "2.4e10"), extra_sections=TINY_CHAT)
    base = folder / "base"
    root = base / "pipeline" / "tiny"
    progress = [progress_file(root, "base_model", tag) for tag in ("d1_2e10", "d1_2.4e10")]
    job = start_main_job(preset, base, sigint_ignored=True)
    try:
        def window():
            if job.poll() is not None:
                return "ended"
            states = [mid_training(read_progress(p, 0)) for p in progress]
            return "late" if False in states else "both training" if all(states) else None

        if wait_until(window, 600, "both cells training", poll=0.1) != "both training":
            out, _ = job.communicate(timeout=600)  # too late for this grid: let it finish, then try again
            assert job.returncode == 0, out
            return None
        dispositions = signal_dispositions(job.pid)
        sent = time.time()
        os.killpg(job.pid, signal.SIGINT)  # Ctrl-C on a terminal
        out, _ = job.communicate(timeout=300)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    last = [read_progress(p, 0) for p in progress]
    if job.returncode == 0 and all(p is not None and not mid_training(p) and last_step_at(p) < sent for p in last):
        return None  # both cells had trained to the end before the signal left: too late, not ignored
    timing = (f"Ctrl-C at {sent:.1f}; the cells' last progress at {[p and round(last_step_at(p), 1) for p in last]}; "
              f"the job's signal masks then: {dispositions}")
    return job, out + timing, root, base, preset


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_two_cells_train_at_once_stop_on_ctrl_c_and_resume(tmp_path, monkeypatch):
    monkeypatch.setenv("NANOCHAT_TRAINING_SLOTS", "2")  # whatever this machine's cores (main_job_env keeps it)
    interrupted_run = ctrl_c_mid_training(tmp_path, 1) or ctrl_c_mid_training(tmp_path, 2)
    assert interrupted_run, "twice this test was too late for both cells' training (see ctrl_c_mid_training)"
    job, out, root, base, preset = interrupted_run
    dagster_home = base / "pipeline" / "dagster_home"
    assert job.returncode == 130, out
    assert "base_model[d1|2e10]: interrupted" in out and "base_model[d1|2.4e10]: interrupted" in out, out
    assert "the 2 cells in progress saved checkpoints" in out, out
    for tag in ("d1_2e10", "d1_2.4e10"):
        assert list((root / "base_checkpoints" / tag).glob("model_*.pt")), tag
    assert wait_until(lambda: not processes_of(base), 30, "the daemon, its code server and the cells gone",
                      poll=0.5), processes_of(base)
    interrupted = grid_runs(dagster_home)
    assert len(interrupted) == 2 and overlapped(interrupted), [(r.start_time, r.end_time) for r in interrupted]
    assert all(r.dagster_run.tags["nanochat/main_job"] == "tiny" for r in interrupted)

    code, out = run_main_job(preset, base)  # the same command again: both cells resume, side by side
    assert code == 0, out
    assert "base_model[d1|2e10]: done" in out and "base_model[d1|2.4e10]: done" in out, out
    resumed = grid_runs(dagster_home)[2:]
    assert [r.dagster_run.status for r in resumed] == [dg.DagsterRunStatus.SUCCESS] * 2
    assert overlapped(resumed), [(r.start_time, r.end_time) for r in resumed]
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for record in resumed:
            logs = " ".join(e.message or "" for e in instance.all_logs(record.dagster_run.run_id))
            assert "resuming" in logs and "from its checkpoint at step" in logs, record.dagster_run.tags
    assert wait_until(lambda: not processes_of(base), 30, "no process left after the resumed run", poll=0.5)


def test_the_queue_starts_the_largest_budget_first_and_within_it_the_most_steps():
    """Longest first, so that short cells fill the slots at the end. Checked against nanochat's sizing of
    each of the demo's cells (its FLOPs and its number of steps), not against the key's fields."""
    from nanochat_core.model.sizing import plan_training
    from nanochat_pipeline.cli.queued_cells import longest_first
    from nanochat_pipeline.partitions import cell_from_key, grid_partitions

    demo = load_preset("demo")
    partitions = grid_partitions(demo)
    keys = partitions.get_partition_keys()

    def plan(key: str):
        cell = cell_from_key(partitions, key)
        t = demo.train
        return plan_training(cell.depth, demo.tokenizer["vocab_size"], t["max_seq_len"], t["aspect_ratio"],
                             t["head_dim"], t["window_pattern"], target_flops=cell.target_flops,
                             total_batch_size=t["total_batch_size"])

    budgets = [float(f) for f in demo.flops_keys]  # whole steps miss a budget by up to ~2%: the nearest one
    cost = {k: (min(budgets, key=lambda b: abs(math.log(plan(k).total_flops / b))), plan(k).num_iterations)
            for k in keys}
    ordered = longest_first(partitions, list(reversed(keys)))
    assert sorted(ordered) == sorted(keys)
    assert [cost[k] for k in ordered] == sorted(cost.values(), reverse=True), [(k, cost[k]) for k in ordered]
    assert ordered[:2] == ["d1|2.5e11", "d2|2.5e11"] and ordered[-1] == "d4|2.5e10"
