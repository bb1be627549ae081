"""CORE (base_eval) and chat_eval under `torchrun --nproc_per_node=2` (CPU, gloo) split the work and
sum the counts: the results files equal a one-process run's, and each rank put only its share of the
rows through the model (tests/eval_probe.py counts them), so the two ranks together did the single
process's work once, not twice.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chat_fixtures import TAG, STEP, write_chat_checkpoint
from test_chat_eval import ASSISTANT_START, ASSISTANT_END, bigram_gpt, tid, write_checkpoint, write_scored_task_data
from test_core_eval import write_bundle

PROBE = str(Path(__file__).with_name("eval_probe.py"))
CONTEXT = 40  # the checkpoint's max_seq_len: CORE crops the few-shot prompts and cannot fit some spans

# odd row counts, so the ranks' shares differ; spans of varied length, so some examples do not fit
CORE_TASKS = [
    ("hellaswag", "hs.jsonl", "multiple_choice", 1, 25.0,
     [{"query": f"The cat sees number {i}", "choices": ["a red ball in the park.", "the green door.",
                                                        "bread" * (i % 3 + 1)], "gold": i % 3} for i in range(7)]),
    ("winograd", "wg.jsonl", "schema", 0, 50.0,
     [{"context_options": ["The dog likes", "The farmer near the river likes"], "continuation": "the warm bread.",
       "gold": i % 2} for i in range(5)]),
    ("lambada", "lambada.jsonl", "language_modeling", 1, 0.0,
     [{"context": "my friend helps the child near the" + " old" * i, "continuation": "river" + " bank" * (4 * i)}
      for i in range(5)]),
]


def run(cmd: list[str], base: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(base), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def probe(module: str, base: Path, rows_dir: Path, args: list[str], processes: int) -> tuple[str, list[int]]:
    """(stdout, rows through the model per rank) of `module`'s main under `processes` processes."""
    launch = [sys.executable] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    proc = run(launch + [PROBE, module, str(rows_dir), *args], base)
    return proc.stdout, [json.loads((rows_dir / f"rank{r}.json").read_text())["rows"] for r in range(processes)]


def assert_split(single_rows: list[int], ranks_rows: list[int]) -> None:
    assert all(0 < r < single_rows[0] for r in ranks_rows), (single_rows, ranks_rows)
    assert sum(ranks_rows) == single_rows[0]  # each row scored by exactly one rank


@pytest.mark.slow  # two processes (gloo) on two cores
def test_base_eval_core_under_torchrun_equals_one_process(tmp_path):
    base = tmp_path / "base"
    ckpt = write_chat_checkpoint(base, source="base")  # random weights: varied answers
    meta_file = ckpt / f"meta_{STEP:06d}.json"
    meta_file.write_text(json.dumps(json.loads(meta_file.read_text()) | {"max_seq_len": CONTEXT}))
    bundle = write_bundle(tmp_path / "bundle", tasks=CORE_TASKS)
    args = ["--eval", "core", "--bundle-dir", str(bundle), "--device-batch-size", "3", "--device-type", "cpu"]
    results = base / "base_eval" / f"{TAG}_{STEP:06d}.json"

    _, single_rows = probe("nanochat_core.cli.base_eval", base, tmp_path / "rows1", args, 1)
    single = json.loads(results.read_text())
    results.unlink()
    out, ranks_rows = probe("nanochat_core.cli.base_eval", base, tmp_path / "rows2", args, 2)
    double = json.loads(results.read_text())

    assert double == single
    t = single["tasks"]
    assert [t[n]["examples"] + t[n]["unscorable_examples"] for n in ("hellaswag", "winograd", "lambada")] == [7, 5, 5]
    assert single["cropped_prompts"] > 0 and single["unscorable_examples"] > 0  # the summed counts are exercised
    assert_split(single_rows, ranks_rows)
    assert out.count("CORE metric:") == 1  # rank 0 alone logs
    assert json.loads(meta_file.read_text())["core_score"] == single["core"]


# After <|assistant_start|>: `####` (GSM8K's answer) first, then E, then C, so ARC/MMLU answer E where it
# is a choice, else C; after the space 4 and 7 tie, so sampled answers are "#### 42" or "#### 72".
def chat_model():
    return bigram_gpt({ASSISTANT_START: {tid("####"): 12.0, tid("E"): 8.0, tid("C"): 6.0},
                       tid("####"): {tid(" "): 12.0}, tid(" "): {tid("4"): 9.0, tid("7"): 9.0},
                       tid("4"): {tid("2"): 12.0}, tid("7"): {tid("2"): 12.0}, tid("2"): {ASSISTANT_END: 12.0}})


@pytest.mark.slow
def test_chat_eval_under_torchrun_equals_one_process(tmp_path):
    base = tmp_path / "base"
    data = write_scored_task_data(tmp_path / "data", humaneval=False)
    write_checkpoint(base, chat_model())
    # sampled (temperature 0.8, pass@3 in generation batches of 2 and 1): a problem's samples must not
    # depend on which rank draws them
    args = ["-a", "ARC-Easy|MMLU|GSM8K", "-t", "0.8", "-n", "3", "-b", "2", "-m", "12", "--task-data", str(data),
            "--device-type", "cpu"]
    results = base / "chat_eval" / "sft_d2_000005.json"

    _, single_rows = probe("nanochat_core.cli.chat_eval", base, tmp_path / "rows1", args, 1)
    single = json.loads(results.read_text())
    results.unlink()
    out, ranks_rows = probe("nanochat_core.cli.chat_eval", base, tmp_path / "rows2", args, 2)
    double = json.loads(results.read_text())

    for result in (single, double):
        for task in result["tasks"].values():
            task.pop("seconds")  # wall time, the one field that may differ
    assert double == single
    tasks = single["tasks"]
    assert [tasks[n]["num_problems"] for n in ("ARC-Easy", "MMLU", "GSM8K")] == [5, 4, 3]
    assert tasks["ARC-Easy"]["num_correct"] == 3  # E where a choice, else C: rows 1-3 (see test_chat_eval)
    assert 0 < tasks["GSM8K"]["samples_passed"] < 9  # sampling drew both 42 and 72
    assert_split(single_rows, ranks_rows)
    assert out.count("GSM8K: accuracy") == 1 and out.count("Wrote ") == 1  # rank 0 alone logs and writes
