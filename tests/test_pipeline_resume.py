"""Cancelling a training cell (SIGINT to the run) leaves a checkpoint; materializing the cell
again resumes from it instead of starting over."""
import os
import signal
import threading
import time

import dagster as dg
import pytest

from nanochat_core.common import settings
from nanochat_core.model import checkpoint as ckpt
from helpers import DATA_ASSETS, latest_materialization, materialize, tiny_defs, write_tiny_preset

pytestmark = pytest.mark.slow
CELL = "d1|1e10"  # ~250 steps: 230 after the step-20 checkpoint, seconds more than the interrupt takes to land


def interrupt_when(path, timeout=900):
    """SIGINT this process (what a run cancel does) once `path` exists: training is under way. Never
    before (a loaded machine may take minutes to get there), and never after `timeout` s: the run then
    ends uninterrupted and the test says so."""
    def watch():
        deadline = time.time() + timeout
        while time.time() < deadline and not path.exists():
            time.sleep(0.05)
        if path.exists():
            os.kill(os.getpid(), signal.SIGINT)
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_cancelled_cell_resumes_from_its_checkpoint(tmp_base_dir, tmp_path):
    defs, preset = tiny_defs(write_tiny_preset(tmp_path, flops=("1e10",)))
    config = {"ops": {"base_model": {"config": {"save_every": 20}}}}
    ckpt_dir = settings.base_checkpoints_dir(preset.root) / "d1_1e10"
    with dg.instance_for_test() as instance:
        assert materialize(defs, instance, DATA_ASSETS).success
        watcher = interrupt_when(ckpt.meta_path(ckpt_dir, 20))
        try:
            first = materialize(defs, instance, ["base_model"], CELL, raise_on_error=False, run_config=config)
        except KeyboardInterrupt:  # the interrupt may land after dagster's own handler is gone
            first = None
        watcher.join()
        assert first is None or not first.success
        assert latest_materialization(instance, "base_model", CELL) is None  # nothing recorded for a cancelled run
        saved = ckpt.find_last_step(ckpt_dir)
        meta = ckpt.load_meta(ckpt_dir, saved)
        assert 20 <= saved < meta["num_iterations"]  # an interrupted run's checkpoint, not the final one

        second = materialize(defs, instance, ["base_model"], CELL, run_config=config)
        logs = [e.message for e in instance.all_logs(second.run_id) if e.message]
        assert any(f"checkpoint at step {saved}; resuming" in m for m in logs), logs[-20:]
        done = latest_materialization(instance, "base_model", CELL)
        assert done.metadata["num_iterations"].value == meta["num_iterations"]
