"""What the main job shows a person: a line per asset at its start and end, up-to-date lines, short
warnings once, then a summary table; everything else (Dagster's event log, each training step, the
children's output) goes to a per-run log file.

The log file takes the process's file descriptors 1 and 2 (os.dup2), so Dagster's handlers, Python
warnings and the Pipes children (who inherit the descriptors) all write there without being told;
the terminal keeps a duplicate of the original stdout.
"""
from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, TextIO

# Off a terminal, an asset's start line waits this long: an asset done sooner prints its end line only
# (a log then holds one line per quick asset; a slow one still says it has started).
START_LINE_AFTER = 5.0
WARNING_CHARS = 160  # a warning on the terminal is its first line, cut here; the log file has all of it

# The one number that matters per asset: metadata keys, shown as "key value" in this order.
KEY_METRICS = {
    "raw_corpus": ["documents"],
    "shuffled_shards": ["shards"],
    "tokenizer": ["vocab_size", "token_bytes_mean"],
    "synthetic_conversations": ["conversations"],
    "eval_bundle": ["available", "task_files"],
    "task_data": ["available", "missing"],
    "base_model": ["val_bpb"],
    "scaling_results": ["rows", "optimal_ratio"],
    "sft_model": ["val_bpb"],
}
# Any other asset (eval_report, rl_model, ...): its last two numbers whose names say CORE, bpb, pass@k or reward.
METRIC_WORDS = ("core", "bpb", "pass@", "reward")
SHORT_NAMES = {"token_bytes_mean": "bytes/token", "available": "available", "task_files": "task files"}


def key_metric(asset: str, metadata: dict) -> str:
    """'val_bpb 2.3105' and the like; eval_report shows its CORE / ChatCORE numbers (any key naming them)."""
    values = {k: getattr(v, "value", v) for k, v in (metadata or {}).items()}
    keys = KEY_METRICS.get(asset) or [k for k in values if any(word in k.lower() for word in METRIC_WORDS)][-2:]
    parts = []
    for key in keys:
        value = values.get(key)
        if isinstance(value, bool):
            parts.append(f"{SHORT_NAMES.get(key, key)} {'yes' if value else 'no'}")
        elif isinstance(value, float):
            parts.append(f"{SHORT_NAMES.get(key, key)} {'NaN' if math.isnan(value) else f'{value:.4g}'}")
        elif isinstance(value, int):
            parts.append(f"{SHORT_NAMES.get(key, key)} {value:,}")
    if asset == "eval_report" and not parts:
        return "not evaluated (see the report card)"
    return ", ".join(parts)


@dataclass
class Outcome:
    label: str  # asset or asset[partition]
    status: str  # done, up to date, FAILED, interrupted
    seconds: float | None
    metric: str


@contextlib.contextmanager
def captured_output(log_path: Path | None) -> Iterator[TextIO]:
    """Send fds 1 and 2 to `log_path` for the block; yield a stream on the original stdout.
    None (verbose) leaves everything where it is and yields sys.stdout."""
    if log_path is None:
        yield sys.stdout
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    console = os.fdopen(os.dup(saved[0]), "w", buffering=1, encoding="utf-8")
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        yield console
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (log_fd, *saved):
            os.close(fd)
        console.close()


class Terminal:
    """The main job's lines on `console`; each outcome is kept for the summary table."""

    def __init__(self, console: TextIO, interactive: bool = False):
        self.console, self.interactive = console, interactive
        self.outcomes: list[Outcome] = []
        self.warned: set[str] = set()
        self.pending: threading.Timer | None = None  # a deferred start line (off a terminal)

    def say(self, text: str = "") -> None:
        print(text, file=self.console, flush=True)

    def started(self, label: str, at_once: bool = False) -> float:
        """The start line: at once on a terminal or when `at_once`, else only if the asset is still
        running after START_LINE_AFTER seconds. Returns the start time for finished()."""
        if self.interactive or at_once:
            self.say(f"  {label} ...")
        else:
            self.pending = threading.Timer(START_LINE_AFTER, self.say, [f"  {label} ..."])
            self.pending.daemon = True
            self.pending.start()
        return time.monotonic()

    def finished(self, label: str, status: str, since: float | None, metric: str = "",
                 seconds: float | None = None) -> None:
        """The end line; its time is `seconds` when given (a queued run's own start to end), else since `since`."""
        if self.pending is not None:
            self.pending.cancel()
            self.pending = None
        if seconds is None and since is not None:
            seconds = time.monotonic() - since
        self.outcomes.append(Outcome(label, status, seconds, metric))
        took = f" in {format_seconds(seconds)}" if seconds is not None else ""
        self.say(f"  {label}: {status}{took}" + (f"  {metric}" if metric else ""))

    def warn(self, text: str, more: int = 0) -> None:
        """Once per text: its first line, cut to WARNING_CHARS; `more` warnings of the same run are counted."""
        short = text.strip().splitlines()[0] if text.strip() else ""
        short = short if len(short) <= WARNING_CHARS else short[:WARNING_CHARS - 3] + "..."
        if short and short not in self.warned:
            self.warned.add(short)
            self.say(f"  warning: {short}" + (f" (+{more} more in the log)" if more else ""))

    def cause(self, label: str, text: str) -> None:
        """Why `label` failed, on one line and not cut to WARNING_CHARS: it names the file, host or cell
        and what to do (cli/failure_line.py keeps it to one line)."""
        self.say(f"  {label} failed: {' '.join(text.split())}")

    def summary_table(self) -> None:
        """asset, partition, status, time, key metric (rich's table): one row per asset, and one per
        asset and status for a grid's cells (GROUP_CELLS or more): their count, total time and the
        range of their number; each cell's own line is above it."""
        from rich.box import SIMPLE_HEAD
        from rich.console import Console
        from rich.table import Table

        table = Table(box=SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for column in ("asset", "partition", "status", "time", "key metric"):
            table.add_column(column, justify="right" if column == "time" else "left", overflow="fold")
        for row in summary_rows(self.outcomes):
            table.add_row(*row)
        Console(file=self.console, width=120, force_terminal=False, no_color=True, highlight=False).print(table)


GROUP_CELLS = 4
FIRST_NUMBER = re.compile(r"^(.*?) (-?[0-9][0-9,]*\.?[0-9]*(?:e[-+]?[0-9]+)?)(?:,|$)")


def summary_rows(outcomes: list[Outcome]) -> list[tuple[str, str, str, str, str]]:
    groups: dict[tuple[str, str], list[Outcome]] = {}
    for o in outcomes:
        asset, _, partition = o.label.partition("[")
        groups.setdefault((asset, o.status if partition else o.label), []).append(o)
    rows = []
    for (asset, _), members in groups.items():
        if len(members) < GROUP_CELLS:
            for o in members:
                rows.append((asset, o.label.partition("[")[2].rstrip("]"), o.status, _time(o.seconds), o.metric))
            continue
        seconds = [o.seconds for o in members if o.seconds is not None]
        rows.append((asset, f"{len(members)} cells", members[0].status, _time(sum(seconds) if seconds else None),
                     metric_range([o.metric for o in members])))
    return rows


def metric_range(metrics: list[str]) -> str:
    """'val_bpb 2.105 .. 3.533' from each cell's 'val_bpb X' (cells without the number are left out)."""
    found = [m for m in (FIRST_NUMBER.match(text) for text in metrics) if m]
    if not found:
        return ""
    values = sorted(float(m[2].replace(",", "")) for m in found)
    return f"{found[0][1]} {values[0]:.4g} .. {values[-1]:.4g}" if len(values) > 1 else f"{found[0][1]} {values[0]:.4g}"


def _time(seconds: float | None) -> str:
    return format_seconds(seconds) if seconds is not None else ""


def format_seconds(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 60 else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
