"""Training progress from a Pipes child to the main job's terminal, through a small JSON file.

The child (rank 0) rewrites `<preset root>/progress/<asset>_<tag>.json` at most every
WRITE_EVERY seconds (children/progress.py: temp name + rename, a reader never sees half a file); the main job polls it
while the cell's run is in progress. A file, not Pipes log messages: the parent reads it without
going through Dagster's event log, a slow or lost message cannot stall the bar, and a file left by
an older run is recognised by its start time and ignored.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

POLL_EVERY = 0.5  # seconds between reads in the main job
# When stdout is not a terminal (CI, a pipe): a line when a cell passes half of its steps, at least
# LINE_EVERY seconds after its start line (a short cell prints none), and one at least every
# QUIET_AT_MOST seconds on a long one. A log then grows with the number of cells, not with the speed
# of the machine (the demo's ten cells stay under its 80 lines on a busy one too).
LINE_EVERY = 30.0
QUIET_AT_MOST = 300.0
PARTS = 2


def read_progress(path: Path, not_before: float) -> dict | None:
    """The child's latest progress, or None when there is none yet from a run started after `not_before`."""
    try:
        progress = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return progress if progress.get("started", 0) >= not_before else None


def describe(progress: dict) -> str:
    rate = f"{progress['tok_per_sec']:,} tok/s" if "tok_per_sec" in progress else \
        f"{progress['rollouts_per_sec']:.2f} rollouts/s"  # RL's rollouts vary in length
    return f"loss {progress['loss']:.3f}, {rate}"


class ProgressWatcher:
    """Main-job side: a thread that draws one cell's progress while its run is in progress: a tqdm bar
    redrawn in place on a terminal, else a few lines (see PARTS, LINE_EVERY, QUIET_AT_MOST)."""

    def __init__(self, path: Path, label: str, console: TextIO, interactive: bool, position: int = 0):
        """`position`: the bar's line below the cursor (cells training side by side each have one)."""
        self.path, self.label, self.console, self.interactive = path, label, console, interactive
        self.position = position
        self.since = time.time() - 1.0  # a child started within this second still counts
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"progress {label}", daemon=True)
        self.bar: tqdm | None = None
        self.last_line = time.monotonic()  # the start line was just printed
        self.part = 0  # the last part (half) of the steps a line was printed for

    def __enter__(self) -> "ProgressWatcher":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_event.set()
        self.thread.join()
        if self.bar is not None:
            self.bar.close()

    def _loop(self) -> None:
        while not self.stop_event.wait(POLL_EVERY):
            progress = read_progress(self.path, self.since)
            if progress is not None:
                self._show(progress)

    def _show(self, p: dict) -> None:
        initial = p["first_step"]
        if self.interactive:
            if self.bar is None:
                self.bar = tqdm(total=p["total"], initial=initial, desc=f"  {self.label}", file=self.console,
                                unit="step", leave=False, dynamic_ncols=True, position=self.position)
            self.bar.total = p["total"]
            self.bar.set_postfix_str(describe(p), refresh=False)
            self.bar.update(p["step"] - self.bar.n)
        elif self._line_due(p):
            self.last_line = time.monotonic()
            self.part = part_of(p)
            rate = (p["step"] - initial) / p["elapsed"] if p["elapsed"] > 0 else None
            meter = tqdm.format_meter(p["step"], p["total"], p["elapsed"], prefix=f"  {self.label}", unit="step",
                                      rate=rate, initial=initial, ncols=100, postfix=describe(p))
            print(meter, file=self.console, flush=True)

    def _line_due(self, p: dict) -> bool:
        quiet = time.monotonic() - self.last_line
        if p.get("total") and p["step"] >= p["total"]:
            return False  # the end line follows at once
        return quiet >= QUIET_AT_MOST or (quiet >= LINE_EVERY and part_of(p) > self.part)


def part_of(p: dict) -> int:
    return PARTS * p["step"] // p["total"] if p.get("total") else 0


def is_terminal(stream: TextIO) -> bool:
    return hasattr(stream, "isatty") and stream.isatty() and os.environ.get("TERM") != "dumb"

