"""Chat evaluation on a real tiny GPT whose answers are known in advance.

The model is a GPT with its output projections at zero (init_weights), so every block is the
identity and the logits at a position depend only on the token there: one embedding direction per
token of interest, and lm_head columns that say which token follows it (a bigram model). That makes
the categorical answer after <|assistant_start|> and whole greedy completions known exactly, through
the real rendering, padding, KV-cache generation and grading code.
"""
from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nanochat_core.tokenizer.chat_render import render_for_completion
from nanochat_core.evaluation.chat_categorical import LetterIds, LetterTokenError, answer_letters
from nanochat_core.evaluation.chat_eval import (evaluate_chat, parse_task_names, problem_indices,
                                                write_chat_results)
from nanochat_core.evaluation.chatcore import chatcore
from nanochat_core.model.gpt import GPT, GPTConfig
from nanochat_core.tasks.arc import ARC
from nanochat_core.tasks.gsm8k import GSM8K
from nanochat_core.tasks import task_data
from nanochat_core.tasks.registry import CHATCORE_TASKS
from nanochat_core.tokenizer.bpe import Tokenizer
from helpers import write_jsonl

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N_EMBD = 32


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    # A missing task is found missing at once, never downloaded. (Not HF_HUB_OFFLINE in this process:
    # huggingface_hub reads it once at import, and would then stay offline for later tests.)
    monkeypatch.setattr(task_data, "_unreachable", "no network in these tests")


def tiny_tokenizer() -> Tokenizer:
    """A real BPE vocabulary: the 256 bytes plus the merges `##` and `####`, so GSM8K's `####` marker
    is one token a bigram model can emit once."""
    ranks = {bytes([i]): i for i in range(256)}
    ranks[b"##"], ranks[b"####"] = 256, 257
    return Tokenizer.from_mergeable_ranks(ranks)


TOK = tiny_tokenizer()
S = TOK.encode_special
ASSISTANT_START, ASSISTANT_END, BOS = S("<|assistant_start|>"), S("<|assistant_end|>"), TOK.get_bos_token_id()


def tid(text: str) -> int:
    ids = TOK.encode(text)
    assert len(ids) == 1, text
    return ids[0]


def bigram_gpt(transitions: dict[int, dict[int, float]], sequence_len: int = 1024) -> GPT:
    """A GPT whose logits after token t are transitions[t] (others 0), and all 0 after any other token."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(sequence_len=sequence_len, vocab_size=TOK.get_vocab_size(), n_layer=2, n_head=2,
                          n_kv_head=2, n_embd=N_EMBD, window_pattern="L"))
    model.init_weights()
    assert len(transitions) < N_EMBD
    with torch.no_grad():
        wte, head = model.transformer.wte.weight, model.lm_head.weight
        wte.zero_()
        wte[:, N_EMBD - 1] = 1.0  # every other token shares one direction that predicts nothing in particular
        head.zero_()
        for slot, (token, nexts) in enumerate(transitions.items()):
            wte[token].zero_()
            wte[token, slot] = 1.0
            for nxt, logit in nexts.items():
                head[nxt, slot] = logit / math.sqrt(N_EMBD)  # the final RMSNorm scales a unit vector to sqrt(d)
    return model.eval()


# After <|assistant_start|> the model likes `Z` best (not a letter), then E, then C; after BOS (the
# padding) it says A: reading logits at a padded position instead of the last real one answers A.
LETTER_PREFS = {ASSISTANT_START: {tid("Z"): 12.0, tid("E"): 8.0, tid("C"): 6.0}, BOS: {tid("A"): 12.0}}


def letter_model(sequence_len: int = 1024) -> GPT:
    return bigram_gpt(LETTER_PREFS, sequence_len)


# Greedy GSM8K answer: "#### 42" then <|assistant_end|>. After the space, 4 and 7 tie: greedy takes the
# lower id (4), sampling draws either, giving "#### 42" or "#### 72".
def gsm8k_model(tie: bool = False) -> GPT:
    after_space = {tid("4"): 9.0, tid("7"): 9.0 if tie else 0.0}
    return bigram_gpt({ASSISTANT_START: {tid("####"): 12.0}, tid("####"): {tid(" "): 12.0},
                       tid(" "): after_space, tid("4"): {tid("2"): 12.0}, tid("7"): {tid("2"): 12.0},
                       tid("2"): {ASSISTANT_END: 12.0}})


def arc_row(labels: str, key: str, stem: str = "Which one?") -> dict:
    return {"id": f"q{labels}{key}", "question": {"stem": stem, "choices": [{"text": f"option {l}", "label": l}
                                                                          for l in labels]}, "answerKey": key}


# (labels, key): the model answers E where E is a choice, else C. Right: rows 1-3; wrong: rows 4-5.
ARC_ROWS = [("1234", "3"), ("ABC", "C"), ("ABCDE", "E"), ("ABCD", "A"), ("ABCDE", "C")]
ARC_GOLD_HIT = [True, True, True, False, False]
MMLU_ROWS = ["What is 1+1?,1,2,3,4,C", "Pick,w,x,y,z,C", "Longer question with more words here,a,b,c,d,B",
             "Q,a,b,c,d,D"]
GSM8K_ROWS = [("How many apples?", "6 times 7 is <<6*7=42>>42.\n#### 42"),
              ("How many pears?", "#### 72"), ("How many plums?", "#### 5")]
HUMANEVAL_ROW = {"task_id": "HumanEval/0", "prompt": 'def add(a, b):\n    """Return a + b."""\n',
                 "canonical_solution": "    return a + b\n",
                 "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
                 "entry_point": "add"}


def write_scored_task_data(root: Path, humaneval: bool = True) -> Path:
    """Release-format files for every chat task (HumanEval optional) under root: rows the scripted models
    here answer right or wrong by design (helpers.write_task_data writes random ones)."""
    for subset in ("ARC-Easy", "ARC-Challenge"):
        write_jsonl(root / "arc" / subset / f"{subset}-Test.jsonl",
                    [arc_row(labels, key, stem=f"{subset} question {i}" + " long" * (3 * i))
                     for i, (labels, key) in enumerate(ARC_ROWS)])
    mmlu = root / "mmlu" / "data" / "test"
    mmlu.mkdir(parents=True)
    (mmlu / "tiny_test.csv").write_text("\n".join(MMLU_ROWS) + "\n")
    write_jsonl(root / "gsm8k" / "grade_school_math" / "data" / "test.jsonl",
                [{"question": q, "answer": a} for q, a in GSM8K_ROWS])
    if humaneval:
        write_jsonl(root / "humaneval" / "data" / "HumanEval.jsonl", [HUMANEVAL_ROW])
    return root


def quiet(_line: str) -> None:
    pass


# ---------------------------------------------------------------- categorical
def test_categorical_accuracy_exact_with_letters_restricted_per_item(tmp_path):
    data = write_scored_task_data(tmp_path)
    model = letter_model()
    conv = ARC("ARC-Easy", "test", data)[0]
    with torch.no_grad():
        raw = model(torch.tensor([render_for_completion(TOK, conv)]))[0, -1]
    assert int(raw.argmax()) == tid("Z")  # unrestricted, the model would not answer a letter at all

    result = evaluate_chat(model, TOK, "cpu", "ARC-Easy|MMLU", task_data=data, batch_size=2, log=quiet)
    arc, mmlu = result["tasks"]["ARC-Easy"], result["tasks"]["MMLU"]
    # 4-choice items get C (E is not theirs), 5-choice E, 3-choice C, numeric labels 1-4 read as A-D
    assert (arc["num_correct"], arc["num_problems"]) == (3, 5)
    assert arc["accuracy"] == pytest.approx(0.6) and arc["centered"] == pytest.approx((0.6 - 0.25) / 0.75)
    assert (mmlu["num_correct"], mmlu["num_problems"]) == (2, 4)
    assert mmlu["centered"] == pytest.approx(1 / 3)
    assert arc["cropped_prompts"] == mmlu["cropped_prompts"] == 0
    assert result["chatcore"] is None and result["partial"] and result["skipped"] == {}


def test_padding_is_read_at_each_rows_last_real_token(tmp_path):
    data = write_scored_task_data(tmp_path)
    task = ARC("ARC-Easy", "test", data)
    conversations = [task[i] for i in range(len(task))]
    lengths = {len(render_for_completion(TOK, c)) for c in conversations}
    assert len(lengths) == len(conversations)  # ragged: every row but the longest is padded with BOS
    letters, cropped = answer_letters(letter_model(), TOK, conversations, "cpu", context=1024)
    assert letters == ["C", "C", "E", "C", "E"] and cropped == 0


def test_long_prompts_are_cropped_from_the_left_and_counted(tmp_path):
    data = write_scored_task_data(tmp_path)
    task = ARC("ARC-Easy", "test", data)
    context = 198  # between the prompt lengths (154 to 227 tokens): some rows are cropped, some not
    expected_cropped = sum(len(render_for_completion(TOK, task[i])) > context for i in range(len(task)))
    assert 0 < expected_cropped < len(task)
    result = evaluate_chat(letter_model(sequence_len=context), TOK, "cpu", ["ARC-Easy"], task_data=data,
                           batch_size=3, log=quiet)
    arc = result["tasks"]["ARC-Easy"]
    assert arc["cropped_prompts"] == expected_cropped
    assert arc["num_correct"] == 3  # the end of the prompt (choices, assistant start) survives the crop


def test_letter_that_is_not_one_token_is_a_clear_error():
    with pytest.raises(LetterTokenError, match=r"'AB' encodes to 2 tokens"):
        LetterIds(TOK)(["A", "AB"])


def test_unknown_task_names_list_the_valid_ones():
    assert parse_task_names(None) == list(CHATCORE_TASKS) == ["ARC-Easy", "ARC-Challenge", "MMLU", "GSM8K", "HumanEval"]
    assert parse_task_names("GSM8K|ARC-Easy|GSM8K") == ["GSM8K", "ARC-Easy"]
    assert parse_task_names("Arithmetic") == ["Arithmetic"]  # asked for by name, never by default
    with pytest.raises(ValueError, match=r"'GSM8k'.*valid names: ARC-Easy, ARC-Challenge, MMLU, GSM8K, HumanEval, Arithmetic"):
        parse_task_names("ARC-Easy|GSM8k")


# ---------------------------------------------------------------- generative
def test_gsm8k_greedy_generation_is_graded_on_the_final_number(tmp_path):
    data = write_scored_task_data(tmp_path)
    task = GSM8K("test", data)
    from nanochat_core.chat.tools import complete
    assert complete(gsm8k_model(), TOK, render_for_completion(TOK, task[0]), 20, temperature=0.0) == ["#### 42"]
    result = evaluate_chat(gsm8k_model(), TOK, "cpu", ["GSM8K"], task_data=data, log=quiet)
    g = result["tasks"]["GSM8K"]
    assert (g["num_correct"], g["num_problems"], g["num_samples"]) == (1, 3, 1)
    assert g["centered"] == pytest.approx(1 / 3)  # baseline 0 for generative tasks


def test_pass_at_n_counts_a_problem_solved_when_any_sample_passes(tmp_path):
    data = write_scored_task_data(tmp_path)
    # 8 samples drawn in batches of 3, 3, 2 (seeds 42, 43, 44); each says "#### 42" or "#### 72"
    result = evaluate_chat(gsm8k_model(tie=True), TOK, "cpu", ["GSM8K"], task_data=data, num_samples=8,
                           temperature=1.0, top_k=2, batch_size=3, log=quiet)
    g = result["tasks"]["GSM8K"]
    # the sample streams are the same for each prompt (the model only sees the last token): every sample
    # passes exactly one of the 42 and 72 problems, none passes the 5 one
    assert g["samples_passed"] == 8
    assert (g["num_correct"], g["num_problems"]) == (2, 3)
    again = evaluate_chat(gsm8k_model(tie=True), TOK, "cpu", ["GSM8K"], task_data=data, num_samples=8,
                          temperature=1.0, top_k=2, batch_size=3, log=quiet)["tasks"]["GSM8K"]
    assert again["samples_passed"] == g["samples_passed"] and again["num_correct"] == g["num_correct"]


@pytest.mark.parametrize("batch_tokens", [32768, 1])
def test_one_sample_per_problem_decoded_together_grades_as_one_at_a_time(tmp_path, batch_tokens):
    # one sample per problem goes through chat.lockstep (all problems in one batch, or one a batch with
    # batch_tokens=1); its grades must be those of each problem's own seeded complete() call
    data = write_scored_task_data(tmp_path)
    task = GSM8K("test", data)
    from nanochat_core.chat.tools import complete
    model = gsm8k_model(tie=True)
    alone = [complete(model, TOK, render_for_completion(TOK, task[i]), 12, temperature=1.0, top_k=2, seed=42)[0]
             for i in range(len(task))]
    expected = sum(bool(task.evaluate(task[i], alone[i])) for i in range(len(task)))
    g = evaluate_chat(model, TOK, "cpu", ["GSM8K"], task_data=data, temperature=1.0, top_k=2, max_new_tokens=12,
                      batch_tokens=batch_tokens, log=quiet)["tasks"]["GSM8K"]
    assert (g["num_correct"], g["samples_passed"], g["num_problems"]) == (expected, expected, 3)
    assert len({len(render_for_completion(TOK, task[i])) for i in range(len(task))}) > 1  # ragged prompts


def test_max_problems_takes_the_seeded_order(tmp_path):
    data = write_scored_task_data(tmp_path)
    order = problem_indices(len(ARC_ROWS), 3)
    assert order == problem_indices(len(ARC_ROWS), None)[:3] and sorted(problem_indices(5, None)) == list(range(5))
    result = evaluate_chat(letter_model(), TOK, "cpu", ["ARC-Easy"], task_data=data, max_problems=3, log=quiet)
    arc = result["tasks"]["ARC-Easy"]
    assert arc["num_problems"] == 3 and arc["num_correct"] == sum(ARC_GOLD_HIT[i] for i in order)


# ---------------------------------------------------------------- partial results and files
def test_missing_task_is_skipped_partial_and_written(tmp_path):
    data = write_scored_task_data(tmp_path / "data", humaneval=False)
    lines = []
    result = chatcore(gsm8k_model(), TOK, "cpu", task_data=data, max_cat=-1, max_sample=2, log=lines.append)
    assert result["chatcore"] is None and result["partial"] is True
    assert list(result["skipped"]) == ["HumanEval"]
    assert "HumanEval.jsonl" in result["skipped"]["HumanEval"] and "unreachable" in result["skipped"]["HumanEval"]
    assert set(result["tasks"]) == {"ARC-Easy", "ARC-Challenge", "MMLU", "GSM8K"}
    assert result["tasks"]["GSM8K"]["num_problems"] == 2 and result["tasks"]["MMLU"]["num_problems"] == 4
    assert any(line.startswith("HumanEval: skipped") for line in lines)

    out = tmp_path / "chat_eval"
    path = write_chat_results({**result, "settings": {}}, out, "sft", "d2", 7)
    assert path == out / "sft_d2_000007.json"
    saved = json.loads(path.read_text())
    assert {"model_tag", "step", "source", "tasks", "chatcore", "partial", "skipped"} <= set(saved)
    assert saved["chatcore"] is None and saved["partial"] and saved["step"] == 7 and saved["source"] == "sft"
    rows = list(csv.reader(path.with_suffix(".csv").open()))
    assert rows[0] == ["Task", "Accuracy", "Centered"]
    assert rows[1] == ["ARC-Easy", "0.200000", "-0.066667"]  # the tie-break letter A: only row 4 is right
    assert ["HumanEval", "", ""] in rows and rows[-1] == ["ChatCORE (partial)", "", ""]
    assert not list(out.glob("*.tmp*"))  # written under a temporary name, then renamed


def test_humaneval_canonical_solution_passes_in_the_sandbox(tmp_path):
    from nanochat_core.tasks.humaneval import HumanEval

    task = HumanEval(write_scored_task_data(tmp_path))
    conv = task[0]
    assert task.evaluate(conv, conv["messages"][-1]["content"])
    assert not task.evaluate(conv, conv["prompt"] + "    return a - b\n")


def test_chatcore_is_the_mean_centered_accuracy_when_every_task_ran(tmp_path):
    data = write_scored_task_data(tmp_path)
    result = chatcore(gsm8k_model(), TOK, "cpu", task_data=data, max_cat=-1, max_sample=-1, log=quiet)
    assert result["partial"] is False and result["skipped"] == {}
    centered = {name: t["centered"] for name, t in result["tasks"].items()}
    # this model answers "####" after <|assistant_start|>, never a letter: categorical scoring still
    # picks a letter, the first of the tied ones (A), right where the gold is A
    arc_a = sum(key in ("A", "1") for _, key in ARC_ROWS) / len(ARC_ROWS)
    assert centered["ARC-Easy"] == pytest.approx((arc_a - 0.25) / 0.75)
    assert centered["MMLU"] == pytest.approx((0 - 0.25) / 0.75)
    assert centered["GSM8K"] == pytest.approx(1 / 3) and centered["HumanEval"] == 0.0  # "#### 42" is no code
    assert result["chatcore"] == pytest.approx(sum(centered.values()) / 5)


# ---------------------------------------------------------------- command line
def write_checkpoint(base: Path, model: GPT, tag: str = "d2", step: int = 5) -> Path:
    from nanochat_core.model.checkpoint import save_checkpoint

    TOK.save(base / "tokenizer")
    c = model.config
    meta = {"step": step, "model_config": {"sequence_len": c.sequence_len, "vocab_size": c.vocab_size,
                                           "n_layer": c.n_layer, "n_head": c.n_head, "n_kv_head": c.n_kv_head,
                                           "n_embd": c.n_embd, "window_pattern": c.window_pattern},
            "user_config": {}}
    ckpt = base / "chatsft_checkpoints" / tag
    save_checkpoint(ckpt, step, model.state_dict(), None, meta)
    return ckpt


def run_cli(base: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(base), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "nanochat_core.cli.chat_eval", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_end_to_end_on_a_tiny_checkpoint(tmp_base_dir, tmp_path):
    data = write_scored_task_data(tmp_path / "data")
    ckpt = write_checkpoint(tmp_base_dir, gsm8k_model())
    proc = run_cli(tmp_base_dir, "-a", "ARC-Easy|GSM8K", "-x", "4", "-m", "16", "--task-data", str(data),
                   "--device-type", "cpu")
    assert proc.returncode == 0, proc.stderr
    order = problem_indices(3, 4)
    gsm_correct = sum(GSM8K_ROWS[i][1].endswith("#### 42") for i in order)
    arc_order = problem_indices(len(ARC_ROWS), 4)
    arc_correct = sum(ARC_ROWS[i][1] in ("A", "1") for i in arc_order)  # this model's letter is the tie-break A
    def line(name, correct, n):  # the accuracy and its binomial standard error, computed here independently
        p = correct / n
        return f"{name}: accuracy {p:.4f} +- {(p * (1 - p) / n) ** 0.5:.4f} ({correct}/{n})"

    assert line("ARC-Easy", arc_correct, 4) in proc.stdout
    assert line("GSM8K", gsm_correct, 3) in proc.stdout
    assert "ChatCORE: n/a (partial: 2 of 5 tasks ran; not run: ARC-Challenge, MMLU, HumanEval)" in proc.stdout
    saved = json.loads((tmp_base_dir / "chat_eval" / "sft_d2_000005.json").read_text())
    assert saved["tasks"]["ARC-Easy"]["num_problems"] == 4 and saved["tasks"]["GSM8K"]["num_problems"] == 3
    assert saved["settings"]["max_problems"] == 4 and saved["settings"]["max_new_tokens"] == 16
    csv_rows = list(csv.reader((tmp_base_dir / "chat_eval" / "sft_d2_000005.csv").open()))
    assert [r[0] for r in csv_rows] == ["Task", "ARC-Easy", "GSM8K", "ChatCORE (partial)"]
    assert "chatcore" not in json.loads((ckpt / "meta_000005.json").read_text())  # a subset is not ChatCORE

    from nanochat_core.report.sources import chat_eval_section
    section = chat_eval_section("d2", "sft", tmp_base_dir)
    assert section["status"] == "ok" and section["partial"] and section["chatcore"] is None


def test_cli_records_chatcore_in_the_checkpoint_meta(tmp_base_dir, tmp_path):
    data = write_scored_task_data(tmp_path / "data")
    ckpt = write_checkpoint(tmp_base_dir, letter_model(), step=3)
    proc = run_cli(tmp_base_dir, "-m", "4", "--task-data", str(data), "--device-type", "cpu")
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((ckpt / "meta_000003.json").read_text())
    saved = json.loads((tmp_base_dir / "chat_eval" / "sft_d2_000003.json").read_text())
    assert meta["chatcore"] == saved["chatcore"] and meta["chatcore_partial"] == saved["partial"]
    assert saved["chatcore"] is not None and "ChatCORE: " in proc.stdout


def test_cli_errors_name_the_task_or_the_folder(tmp_base_dir):
    proc = run_cli(tmp_base_dir, "-a", "ARC-Easy|Winogrande")
    assert proc.returncode == 2 and "'Winogrande'" in proc.stderr and "HumanEval" in proc.stderr
    proc = run_cli(tmp_base_dir, "-i", "sft", "--device-type", "cpu")
    assert proc.returncode == 1
    assert f"no sft checkpoints: the folder {tmp_base_dir / 'chatsft_checkpoints'} is missing" in proc.stderr


def test_batch_tokens_flag_defaults_to_the_library_bound_and_must_be_positive(capsys):
    from nanochat_core.chat.lockstep import DEFAULT_BATCH_TOKENS
    from nanochat_core.cli import chat_eval as cli
    assert cli.build_parser().parse_args([]).batch_tokens == DEFAULT_BATCH_TOKENS  # the CLI spells it out
    with pytest.raises(SystemExit) as stop:
        cli.main(["--batch-tokens", "0"])
    assert stop.value.code == 2 and "--batch-tokens must be at least 1" in capsys.readouterr().err


def test_a_killed_run_keeps_the_tasks_that_finished(tmp_base_dir, tmp_path):
    """The results files are rewritten after every task: SIGKILL during the second keeps the first."""
    data = write_scored_task_data(tmp_path / "data")
    write_checkpoint(tmp_base_dir, gsm8k_model())
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(tmp_base_dir), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "nanochat_core.cli.chat_eval", "-a", "ARC-Easy|GSM8K", "-n", "500",
                             "-m", "64", "-t", "1.0", "--task-data", str(data), "--device-type", "cpu"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("[2/2] GSM8K: 3 problems"):  # printed after ARC-Easy's results were written
            proc.kill()
            break
    proc.communicate(timeout=60)
    assert proc.returncode == -9, "".join(lines)
    assert any(line.startswith(f"[1/2] ARC-Easy: {len(ARC_ROWS)} problems") for line in lines), "".join(lines)
    saved = json.loads((tmp_base_dir / "chat_eval" / "sft_d2_000005.json").read_text())
    assert list(saved["tasks"]) == ["ARC-Easy"] and saved["not_run"] == ["GSM8K"] and saved["partial"]
    assert saved["tasks"]["ARC-Easy"]["num_problems"] == len(ARC_ROWS)
    csv_rows = list(csv.reader((tmp_base_dir / "chat_eval" / "sft_d2_000005.csv").open()))
    assert [r[0] for r in csv_rows] == ["Task", "ARC-Easy", "ChatCORE (partial)"]


def test_results_files_keep_a_grid_cells_dotted_tag(tmp_path):
    from nanochat_core.evaluation.core import write_results
    from nanochat_core.report.sources import chat_eval_section

    result = {"tasks": {"Arithmetic": {"accuracy": 0.5, "stderr": 0.5, "centered": 0.5, "num_problems": 1}},
              "skipped": {}, "chatcore": None, "partial": True, "settings": {"task_names": ["Arithmetic"]}}
    path = write_chat_results(result, tmp_path / "chat_eval", "sft", "d3_2.5e11", 179)
    assert path.name == "sft_d3_2.5e11_000179.json" and (tmp_path / "chat_eval" / "sft_d3_2.5e11_000179.csv").is_file()
    assert chat_eval_section("d3_2.5e11", "sft", tmp_path)["tasks"]["Arithmetic"]["accuracy"] == 0.5
    core = {"tasks": {}, "core_metric": None, "partial": True, "skipped": [], "cropped_prompts": 0,
            "unscorable_examples": 0, "context": 64, "max_per_task": 100, "bundle_dir": "b", "bundle": None}
    csv_path, json_path = write_results(core, tmp_path / "base_eval", "d3_2.5e11", 258)
    assert (csv_path.name, json_path.name) == ("d3_2.5e11_000258.csv", "d3_2.5e11_000258.json")
