"""The main job's terminal: one line per asset, progress from the training children's progress file,
a log file that holds everything else, a summary table, Ctrl-C that says how to resume."""
import io
import json
import re
import subprocess
import sys
import textwrap
import time

import dagster as dg
import pytest

from nanochat_pipeline.cli import progress
from nanochat_pipeline.children import progress as child_progress
from nanochat_pipeline.children.progress import ProgressWriter, progress_file
from nanochat_pipeline.cli.progress import ProgressWatcher, read_progress
from nanochat_pipeline.cli.run_records import scaling_verdict
from nanochat_pipeline.cli.terminal import Terminal, key_metric
from helpers import wait_until
from main_job_runs import TINY_ASSETS as ASSETS, processes_of, run_main_job


def test_key_metric_names_the_number_that_matters():
    assert key_metric("base_model", {"val_bpb": dg.MetadataValue.float(2.31049), "mfu": 1.0}) == "val_bpb 2.31"
    assert key_metric("base_model", {"val_bpb": float("nan")}) == "val_bpb NaN"
    assert key_metric("shuffled_shards", {"shards": 12, "documents": 5}) == "shards 12"
    assert key_metric("eval_bundle", {"available": False, "reason": "offline"}) == "available no"
    assert key_metric("eval_report", {"ARC-Easy (sft)": 0.25, "CORE (base)": 0.125, "path": "x"}) == "CORE (base) 0.125"
    assert key_metric("eval_report", {"ARC-Easy (sft)": 0.25}) == "not evaluated (see the report card)"
    rl = {"first_mean_reward": 0.40625, "final_mean_reward": 0.5, "pass@1_before": 0.9375, "pass@1": 0.9375}
    assert key_metric("rl_model", rl) == "pass@1_before 0.9375, pass@1 0.9375"


def metrics(step, total, loss=3.0):
    return {"step": step, "loss": loss, "tok_per_sec": 1234, "progress": (step + 1) / total}


def test_progress_file_round_trip_and_stale_files_are_ignored(tmp_path, monkeypatch):
    monkeypatch.setattr(child_progress, "WRITE_EVERY", 0.0)
    path = progress_file(tmp_path, "base_model", "d1_2e9")
    before = time.time() - 1
    write = ProgressWriter(path)
    write({"step": 4, "val_bpb": 2.0})  # a validation report is not a step
    assert read_progress(path, before) is None
    for step in range(5, 10):
        write(metrics(step, 40))
    p = read_progress(path, before)
    assert (p["first_step"], p["step"], p["total"], p["tok_per_sec"]) == (5, 10, 40, 1234)
    assert read_progress(path, time.time() + 5) is None  # written before that run began: an older run's


def test_sft_epoch_progress_estimates_the_total(tmp_path, monkeypatch):
    monkeypatch.setattr(child_progress, "WRITE_EVERY", 0.0)
    path = progress_file(tmp_path, "sft_model", "t")
    ProgressWriter(path)({"step": 9, "loss": 1.0, "tok_per_sec": 5, "progress": 0.25})  # 10 steps = a quarter
    assert read_progress(path, 0)["total"] == 40


def test_rl_progress_shows_rollouts_per_second(tmp_path):
    """RL's rollouts vary in length: its step reports rollouts/s, not tok/s, and the bar says so."""
    path = progress_file(tmp_path, "rl_model", "t")
    ProgressWriter(path)({"step": 1, "loss": 0.5, "mean_reward": 0.25, "rollouts_per_sec": 12.5, "progress": 0.5})
    p = read_progress(path, 0)
    assert (p["step"], p["total"], "tok_per_sec" in p) == (2, 4, False)
    assert progress.describe(p) == "loss 0.500, 12.50 rollouts/s"


def test_non_terminal_progress_prints_a_line_per_half_at_most(tmp_path, monkeypatch):
    monkeypatch.setattr(child_progress, "WRITE_EVERY", 0.0)
    monkeypatch.setattr(progress, "POLL_EVERY", 0.02)
    monkeypatch.setattr(progress, "LINE_EVERY", 0.0)
    path = progress_file(tmp_path, "base_model", "d1")
    console = io.StringIO()
    with ProgressWatcher(path, "base_model[d1|2e9]", console, interactive=False):
        write = ProgressWriter(path)
        for step in range(49):  # the first half of 100 steps: no line
            write(metrics(step, 100))
        time.sleep(0.2)  # ten polls on an idle machine (fewer under load: then this proves less, never fails)
        assert console.getvalue() == ""
        write(metrics(50, 100))  # past half: a line, whenever the watcher next polls (a busy machine may be slow)
        wait_until(console.getvalue, 60, "the half-way line", poll=0.01)
        for step in range(51, 100):  # the rest of the second half, then the last step: no further line
            write(metrics(step, 100))
        time.sleep(0.2)
    lines = console.getvalue().splitlines()
    assert len(lines) == 1, lines  # 100 steps: a line at half of them, none at the end (its end line follows)
    assert lines[0].startswith("  base_model[d1|2e9]:  51%") and "51/100 [" in lines[0], lines
    assert "loss 3.000, 1,234 tok/s" in lines[0]


def test_terminal_warns_once_and_tabulates():
    console = io.StringIO()
    t = Terminal(console)
    t.warn("cell d1: val_bpb is NaN\nmore detail")
    t.warn("cell d1: val_bpb is NaN\nother detail")
    t.warn("x" * 400, more=2)
    t.finished("base_model[d1|2e9]", "done", time.monotonic() - 2, "val_bpb 3.1")
    t.finished("tokenizer", "up to date", None, "vocab_size 320")
    t.summary_table()
    out = console.getvalue()
    assert out.count("warning: cell d1: val_bpb is NaN") == 1 and "more detail" not in out
    assert "  warning: " + "x" * 157 + "... (+2 more in the log)\n" in out
    rows = [line.split() for line in out.splitlines()]
    assert ["base_model", "d1|2e9", "done"] == rows[-2][:3] and rows[-2][-2:] == ["val_bpb", "3.1"]
    assert rows[-1][:4] == ["tokenizer", "up", "to", "date"]


def test_grid_cells_share_a_summary_row_with_their_range():
    console = io.StringIO()
    t = Terminal(console)
    for cell, bpb in (("d1|2e9", 3.5), ("d2|2e9", 3.25), ("d3|2e9", 2.875), ("d4|2e9", 3.0)):
        t.finished(f"base_model[{cell}]", "done", time.monotonic() - 10, f"val_bpb {bpb}")
    t.finished("base_model[d4|4e9]", "FAILED", time.monotonic() - 1, "run abc")
    console.seek(0)
    console.truncate()
    t.summary_table()
    rows = [line.split() for line in console.getvalue().splitlines()[2:]]
    assert rows[0][:4] == ["base_model", "4", "cells", "done"] and rows[0][-4:] == ["val_bpb", "2.875", "..", "3.5"]
    assert rows[0][4] == "40.0s" and rows[1][:3] == ["base_model", "d4|4e9", "FAILED"] and len(rows) == 2


def test_off_a_terminal_a_quick_asset_prints_its_end_line_only(monkeypatch):
    from nanochat_pipeline.cli import terminal

    monkeypatch.setattr(terminal, "START_LINE_AFTER", 60.0)  # far longer than any stall between two calls
    console = io.StringIO()
    t = Terminal(console)
    t.finished("tokenizer", "done", t.started("tokenizer"), "vocab_size 320")
    monkeypatch.setattr(terminal, "START_LINE_AFTER", 0.2)
    since = t.started("base_model[d1|2e9]")
    wait_until(lambda: " ..." in console.getvalue(), 60, "the start line", poll=0.01)
    t.finished("base_model[d1|2e9]", "done", since, "val_bpb 3.1")
    first, start, end = console.getvalue().splitlines()
    assert re.fullmatch(r"  tokenizer: done in 0\.\ds  vocab_size 320", first), first
    assert start == "  base_model[d1|2e9] ..."
    took = re.fullmatch(r"  base_model\[d1\|2e9\]: done in (\d+\.\d)s  val_bpb 3\.1", end)
    assert took and float(took[1]) >= 0.2, end  # the start line came after START_LINE_AFTER, the end after it
    console = io.StringIO()
    t = Terminal(console, interactive=True)  # on a terminal the start line comes at once
    t.started("tokenizer")
    assert console.getvalue() == "  tokenizer ...\n"


@pytest.mark.parametrize("fit, expected", [
    ({"verdict": "N_opt ~ C^0.52: bracketed in 3 of 3 budgets", "credible": True},
     "N_opt ~ C^0.52: bracketed in 3 of 3 budgets (credible)"),
    ({"verdict": "too few budgets to fit", "credible": False}, "too few budgets to fit (not credible)"),
    ({"verdict": "credible law: N_opt ~ C^0.58", "credible": True}, "credible law: N_opt ~ C^0.58"),
    ({"optimal_ratio": {"value": 11.234, "ci": [9, 13]}}, "optimal tokens:params ratio 11.2 (the fit records no verdict)"),
    ({"optimal_ratio": {"value": None}}, "no optimal ratio"),
])
def test_scaling_verdict_reads_fit_json_defensively(tmp_path, fit, expected):
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(fit))
    with dg.instance_for_test() as instance:
        assert scaling_verdict(instance, path).startswith(expected)
        assert scaling_verdict(instance, tmp_path / "absent.json") == "no fit yet (scaling_results has not run)"


def test_captured_output_sends_everything_else_to_the_log(tmp_path):
    log = tmp_path / "run.log"
    script = textwrap.dedent(f"""
        import os, subprocess, sys, warnings
        from pathlib import Path
        from nanochat_pipeline.cli.terminal import captured_output
        with captured_output(Path({str(log)!r})) as console:
            print("python stdout")
            warnings.warn("a python warning")
            subprocess.run([sys.executable, "-c", "import sys; print('child out'); print('child err', file=sys.stderr)"])
            print("for the person", file=console)
        print("after the block")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["for the person", "after the block"] and done.stderr == ""
    text = log.read_text()
    assert all(s in text for s in ("python stdout", "a python warning", "child out", "child err"))


def table_rows(lines):
    """The summary table's rows: asset -> the row's words."""
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["asset", "partition"])
    rows = {}
    for line in lines[start + 2:]:
        if line.startswith("scaling: "):  # the first line after the table
            break
        words = line.split()
        rows[(words[0], words[1] if "|" in words[1] else None)] = words
    return rows


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first test to ask for the shared history makes it: three runs
def test_main_job_output_interrupt_resume_and_up_to_date(tiny_main_job):
    runs, preset = tiny_main_job, tiny_main_job.preset

    # 1. Ctrl-C (SIGINT to the process group, as a terminal sends it) once the cell is training
    code, out = runs.interrupted
    assert code == 130, out
    assert "base_model[d1|4e9]: interrupted" in out
    assert f"Resume with: python -m nanochat_pipeline run --preset {preset}" in out
    assert "Traceback" not in out

    # 2. run again: the cell resumes, every asset gets its start and end line, the rest is in the log
    code, out = runs.resumed
    lines = out.splitlines()
    assert code == 0, out
    assert len(lines) < 60, out
    log_lines = [line for line in lines if line.startswith("log: ")]
    assert len(log_lines) == 2 and log_lines[0] == log_lines[-1] == lines[-1]
    log = open(log_lines[0][len("log: "):]).read()
    # which step the resumed run logs first depends on where the interrupt landed
    assert re.search(r"step \d{5}/", log) and "resuming" in log and "STEP_START" in log
    assert not re.search(r"step \d{5}/", out) and "STEP_START" not in out and "DEBUG" not in out
    rows = table_rows(lines)
    for asset in ASSETS:
        partition = "d1|4e9" if asset in ("base_model", "sft_model", "eval_report") else None
        assert (asset, partition) in rows, (asset, rows)
    assert rows[("base_model", "d1|4e9")][2] == "done" and rows[("base_model", "d1|4e9")][-2] == "val_bpb"
    assert rows[("raw_corpus", None)][1] == "up"  # materialized by the interrupted run: up to date now
    assert any(line.startswith("scaling: ") for line in lines)
    assert any("dg dev -w" in line and f"NANOCHAT_PRESET={preset}" in line for line in lines)

    # 3. and again: everything is up to date, one line each
    code, out = runs.again
    assert code == 0, out
    assert out.count(": up to date") == len(ASSETS) and " ..." not in out


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 4.7 min on one idle core; the run itself may take up to 1800 s
def test_demo_from_nothing_prints_under_80_lines(tmp_path, monkeypatch):
    """The issue's promise to a new user: `python -m nanochat_pipeline run` on the shipped demo, stdout a pipe.
    Its cells one after another on one thread (NANOCHAT_TRAINING_SLOTS=1): side by side through the queue
    cost the suite ~95 s more CPU for the daemon, its code server and a run worker per cell, and that path
    has its own end-to-end test (test_main_job_side_by_side.py: the grid, Ctrl-C, resume, SFT and evaluation)."""
    monkeypatch.setenv("NANOCHAT_TRAINING_SLOTS", "1")
    code, out = run_main_job("demo", tmp_path / "base", timeout=1800)
    assert code == 0, out
    assert len(out.splitlines()) < 80, out
    from nanochat_pipeline.partitions import grid_partitions
    from nanochat_pipeline.presets import load_preset

    demo = load_preset("demo")
    rows = table_rows(out.splitlines())
    cells = len(grid_partitions(demo).get_partition_keys())  # one summary row for the grid (each cell has its lines)
    assert rows[("base_model", None)][1:4] == [str(cells), "cells", "done"]
    assert ("eval_report", demo.chat_cells[0]) in rows
    assert "scaling: credible law: N_opt ~ C^" in out, out  # the grid was chosen so that it finds one
    assert all(f"base_model[{key}]: done in " in out for key in grid_partitions(demo).get_partition_keys()), out
    assert wait_until(lambda: not processes_of(tmp_path / "base"), 30, "no process of the demo left", poll=0.5)
