"""The child's side of training progress: a small JSON file the main job's progress bar reads.

Rank 0 rewrites `<base dir>/progress/<asset>_<tag>.json` at most every WRITE_EVERY seconds (temp
name + rename: a reader never sees half a file). The reading side is nanochat_pipeline/cli/progress.py;
the file, not Pipes log messages, so that a slow or lost message cannot stall the bar, and a file
left by an older run is recognised by its start time.
"""
from __future__ import annotations

import time
from pathlib import Path

from nanochat_core.common.atomic import write_json_atomic

WRITE_EVERY = 0.5  # seconds between rewrites in the child (a demo step takes milliseconds)


def progress_file(base_dir: Path, asset: str, tag: str) -> Path:
    return Path(base_dir) / "progress" / f"{asset}_{tag}.json"


class ProgressWriter:
    """on_metrics(m) with the trainers' step metrics ({step, loss, progress} and tok_per_sec, or
    rollouts_per_sec for RL, whose rollouts vary in length)."""

    def __init__(self, path: Path):
        self.path, self.started, self.last_write, self.first_step = Path(path), time.time(), 0.0, None

    def __call__(self, m: dict) -> None:
        if "loss" not in m or "progress" not in m:
            return
        if self.first_step is None:
            self.first_step = m["step"]
        done = m["step"] + 1
        now = time.time()
        if now - self.last_write < WRITE_EVERY and m["progress"] < 1.0:
            return
        self.last_write = now
        # total steps: exact for a fixed horizon, an estimate for an SFT epoch (progress is its fraction)
        total = max(done, round(done / m["progress"])) if m["progress"] > 0 else None
        rate = {k: m[k] for k in ("tok_per_sec", "rollouts_per_sec") if k in m}
        write_json_atomic(self.path, {"started": self.started, "first_step": self.first_step, "step": done,
                                      "total": total, "loss": m["loss"], **rate, "elapsed": now - self.started})
