"""`python -m nanochat_pipeline run --ladder` as a user runs it, on the issue's case: the demo cut to
depths [1, 2] at its smallest budget, where d2 (the deepest) is lowest (measured: d1 2.769, d2 2.612).
The ladder trains the deeper cell, refits, and stops at its bound, saying why; exit 0."""
import json
import subprocess
import sys

import pytest

from helpers import chat_sections
from main_job_runs import main_job_env
from nanochat_pipeline.presets.ladder_cells import LADDER_FILE
from nanochat_pipeline.presets import load_preset

pytestmark = pytest.mark.slow


def demo_cut_to_two_depths(folder):
    demo = load_preset("demo")
    train = "\n".join(f"{k} = {json.dumps(v)}" for k, v in demo.train.items())
    corpus = "\n".join(f"{k} = {json.dumps(v)}" for k, v in demo.corpus.items())
    tokenizer = "\n".join(f"{k} = {json.dumps(v)}" for k, v in demo.tokenizer.items())
    path = folder / "demo_two_depths.toml"
    path.write_text(f'name = "ladder"\ndepths = [1, 2]\nflops = ["2.5e10"]\n\n[corpus]\n{corpus}\n\n'
                    f"[tokenizer]\n{tokenizer}\n\n[synthetic]\nnum = 5\n\n[train]\n{train}\n"
                    + chat_sections(num_iterations=2, eval_every=-1, eval_tokens=512, chat_tasks="ARC-Easy",
                                    chat_max_problems=1)
                    + "\n[ladder]\nmax_cells = 1\n")
    return path


def test_run_ladder_adds_a_deeper_cell_refits_and_says_why_it_stops(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    proc = subprocess.run([sys.executable, "-m", "nanochat_pipeline", "run", "--ladder", "--yes", "--preset",
                           str(demo_cut_to_two_depths(tmp_path))],
                          # one cell at a time: the ladder is the subject here, not the queue (whose daemon
                          # took this test from 41 s to 102 s in a suite run)
                          env=main_job_env(base) | {"NANOCHAT_TRAINING_SLOTS": "1"}, capture_output=True,
                          text=True, timeout=1500)
    code, out = proc.returncode, proc.stdout + proc.stderr
    assert code == 0, out
    assert "Traceback" not in out
    assert ("ladder round 1: d3|2.5e10 (budget 2.5e+10: minimum at the largest depth tried (d2): add a larger one)"
            in out), out
    assert "  base_model[d3|2.5e10]: done" in out
    refit = next(line for line in out.splitlines() if line.startswith("  refit: "))
    assert "no credible law" in refit  # one budget is never a law
    stop = out.split("ladder: stopped after 1 round(s), 1 cell(s) added in all: ")[1].splitlines()[0]
    assert stop.startswith("no credible law and a bound is reached") and "[ladder] max_cells = 1" in stop
    cells = json.loads((base / "pipeline" / "ladder" / LADDER_FILE).read_text())["cells"]
    assert [(c["depth"], c["flops"]) for c in cells] == [(3, "2.5e10")]
    rows = (base / "pipeline" / "ladder" / "scaling_laws_results_ladder" / "results.csv").read_text().splitlines()
    assert len(rows) == 4  # header + d1, d2 and the ladder's d3: the refit saw the new cell
