"""The report card from a small but real file tree, and the offline nothing-evaluated case."""
import dataclasses
import json

import pytest

from nanochat_core.common import settings
from nanochat_core.cli import report as report_cli
from nanochat_core.model.gpt import GPTConfig
from nanochat_core.report.card import build_report, write_report
from nanochat_core.tokenizer.bpe import Tokenizer, save_token_bytes
from helpers import write_shards
from nanochat_core.model.checkpoint import save_checkpoint

TAG = "d2"
STEP = 40
TEXT = "The quick brown fox jumps over the lazy dog. " * 40 + "Numbers 12345 and words, words, words. " * 20


def write_tokenizer(root):
    tok = Tokenizer.train_from_iterator(iter([TEXT] * 5), 300)
    folder = settings.tokenizer_dir(root)
    tok.save(folder)
    save_token_bytes(tok, folder)
    return tok


def write_base_data(root):
    # two shards, the last of them the validation split
    write_shards(settings.base_data_dir(root), [[TEXT[:500], "another document " * 10]] * 2, row_group_size=1024)


def base_meta(config: GPTConfig) -> dict:
    """A meta dict shaped as base_trainer.save writes it."""
    return {"step": STEP, "val_bpb": 2.3456, "model_config": dataclasses.asdict(config),
            "user_config": {"depth": 2, "model_tag": TAG}, "device_batch_size": 4, "max_seq_len": 64,
            "total_batch_size": 256, "dataloader_state_dict": {"pq_idx": 0, "rg_idx": 0, "epoch": 1},
            "loop_state": {"min_val_bpb": 2.3, "smooth_train_loss": 5.0, "total_training_time": 12.5},
            "num_iterations": STEP, "world_size": 1, "flops_per_token": 1.0e6, "tokens_trained": STEP * 256,
            "horizon_source": "num_iterations"}


def test_report_from_real_files(tmp_base_dir, capsys):
    root = tmp_base_dir
    write_tokenizer(root)
    write_base_data(root)
    config = GPTConfig(sequence_len=64, vocab_size=300, n_layer=2, n_head=1, n_kv_head=1, n_embd=64)
    save_checkpoint(settings.base_checkpoints_dir(root) / TAG, STEP, None, None, base_meta(config))
    eval_json = {"tasks": {"hellaswag": {"accuracy": 0.30, "centered": 0.0667},
                           "arc_easy": {"accuracy": None, "centered": None, "skipped": True}},
                 "core": 0.0667, "partial": True, "skipped": ["arc_easy"], "cropped_prompts": 3}
    (settings.base_eval_dir(root)).mkdir(parents=True)
    (settings.base_eval_dir(root) / f"{TAG}_{STEP:06d}.json").write_text(json.dumps(eval_json))

    markdown, data = build_report(TAG)
    assert data["tokenizer"]["vocab_size"] == 300 and data["tokenizer"]["merges"] == 300 - 256 - 9
    assert data["tokenizer"]["compression"]["val_shard"]["bytes_per_token"] > 1.0
    base = data["base_training"]
    assert base["status"] == "ok" and base["step"] == STEP and base["tokens_trained"] == STEP * 256
    assert base["total_flops"] == pytest.approx(1.0e6 * STEP * 256)
    assert base["param_counts"]["total"] > 0 and base["training_seconds"] == 12.5 and base["val_bpb"] == 2.3456
    assert base["mfu"] is None and "not recorded" in base["mfu_note"]
    ev = data["base_evaluation"]
    assert ev["core"] == pytest.approx(0.0667) and ev["partial"] and "arc_easy" in ev["skipped"]
    assert data["summary"]["CORE"]["base"] == pytest.approx(0.0667)
    assert data["summary"]["GSM8K"]["sft"] is None
    assert "CORE: 0.0667 (PARTIAL" in markdown and "| hellaswag | 0.3000 | 0.0667 |" in markdown
    assert "| CORE (partial) | 0.0667 | - |" in markdown  # the Summary says so too
    assert "Vocab size: 300" in markdown and "Validation bpb 2.3456" in markdown
    missing = {n["what"] for n in data["not_evaluated"]}
    assert missing == {"SFT", "Chat evaluation", "Base evaluation (CORE): arc_easy"}
    assert data["timing"]["recorded_training_sec"] == 12.5

    assert report_cli.main(["--model-tag", TAG]) == 0
    out = capsys.readouterr().out
    md_path = root / "report" / TAG / "report.md"
    assert str(md_path) in out and md_path.read_text().startswith(f"# nanochat report card: `{TAG}`")
    json.loads((root / "report" / TAG / "report.json").read_text())  # valid JSON (no NaN/Infinity)


def test_chat_eval_section_reads_contract_file(tmp_base_dir):
    folder = tmp_base_dir / "chat_eval"
    folder.mkdir()
    tasks = {"ARC-Easy": {"accuracy": 0.5, "centered": 0.333, "num_problems": 10},
             "GSM8K": {"accuracy": 0.1, "centered": 0.1, "num_problems": 10}}
    (folder / f"sft_{TAG}_000007.json").write_text(json.dumps(
        {"source": "sft", "model_tag": TAG, "step": 7, "tasks": tasks, "chatcore": None, "partial": True,
         "skipped": {"HumanEval": "task data missing: task_data/humaneval"}}))
    markdown, data = build_report(TAG)
    assert data["summary"]["ARC-Easy"]["sft"] == 0.5 and data["summary"]["ChatCORE"]["sft"] is None
    assert {"what": "Chat evaluation: HumanEval", "reason": "task data missing: task_data/humaneval"} \
        in data["not_evaluated"]
    assert "ChatCORE: - (PARTIAL" in markdown


def test_offline_nothing_evaluated_says_what_is_missing(tmp_base_dir):
    md_path, json_path = write_report("d9")
    text = md_path.read_text()
    data = json.loads(json_path.read_text())
    assert len(data["not_evaluated"]) == 5
    assert "tokenizer.pkl is missing" in text
    assert "base_checkpoints/d9 is missing (run base_train)" in text
    assert "eval_bundle/core.yaml is missing" in text
    assert "chat_eval/sft_d9_<step>.json is missing" in text and "no task data" in text
    assert "## Summary" in text and "| CORE | - | - |" in text


def write_chat_eval(root, source: str, tasks: dict, skipped: dict, step: int = 7):
    folder = settings.chat_eval_dir(root)
    folder.mkdir(exist_ok=True)
    (folder / f"{source}_{TAG}_{step:06d}.json").write_text(json.dumps(
        {"source": source, "model_tag": TAG, "step": step, "tasks": tasks, "chatcore": None, "partial": True,
         "skipped": skipped}))


def test_summary_has_arithmetic_with_standard_errors_and_says_why_rows_are_empty(tmp_base_dir):
    from nanochat_core.evaluation.chat_eval import standard_error
    from nanochat_core.model.checkpoint import save_checkpoint as save

    root = tmp_base_dir
    config = GPTConfig(sequence_len=64, vocab_size=300, n_layer=2, n_head=1, n_kv_head=1, n_embd=64)
    save_checkpoint(settings.base_checkpoints_dir(root) / TAG, STEP, None, None, base_meta(config))
    save(settings.chatrl_checkpoints_dir(root) / TAG, 3, None, None,
         {"step": 3, "model_config": dataclasses.asdict(config), "num_iterations": 3, "finished": True,
          "task_name": "arithmetic", "task": {"train": {"name": "Arithmetic", "questions": 5000},
                                              "test": {"name": "Arithmetic", "questions": 500}},
          "examples_per_step": 4, "num_samples": 8, "sft_model_tag": TAG, "sft_step": 5,
          "rl_history": {"rewards": [], "pass_at_k": [{"step": 0, "pass_at_k": [0.25], "problems": 100},
                                                      {"step": 3, "pass_at_k": [0.5], "problems": 100}]}})
    no_data = "the Hub dataset could not be reached (no network)"
    skipped = {name: no_data for name in ("ARC-Easy", "ARC-Challenge", "MMLU", "GSM8K", "HumanEval")}
    sft = {"accuracy": 0.40, "stderr": standard_error(0.40, 200), "centered": 0.40, "num_problems": 200}
    rl = {"accuracy": 0.55, "stderr": standard_error(0.55, 200), "centered": 0.55, "num_problems": 200}
    write_chat_eval(root, "sft", {"Arithmetic": sft}, skipped)
    write_chat_eval(root, "rl", {"Arithmetic": rl}, skipped)
    inputs = {"eval_bundle": "no network: example.org did not answer (no answer within 5 s)"}

    markdown, data = build_report(TAG, inputs=inputs)
    assert data["summary"]["Arithmetic"] == {"sft": 0.40, "rl": 0.55}
    assert data["summary"]["val bpb"] == {"base": 2.3456}
    # the standard errors, computed here another way: sqrt(p(1-p)/n) with n = 200
    assert "| Arithmetic | - | 0.4000 ± 0.0346 | 0.5500 ± 0.0352 |" in markdown
    assert "| val bpb | 2.3456 | - | - |" in markdown
    held = data["rl_held_out"]
    assert held["change"] == pytest.approx(0.15) and held["change_stderr"] == pytest.approx((0.0012 + 0.0012375) ** 0.5)
    assert held["beyond_error"] and "a change of +0.1500 ± 0.0494: beyond its error" in markdown
    empty = data["summary_empty"]
    assert set(empty) == {"CORE", "ARC-Easy", "ARC-Challenge", "MMLU", "GSM8K", "HumanEval", "ChatCORE"}
    assert empty["GSM8K"] == no_data and "needs all five" in empty["ChatCORE"] and "core.yaml is missing" in empty["CORE"]
    assert empty["CORE"].startswith("no network: example.org did not answer")
    assert f"- GSM8K: {no_data}" in markdown and "## Evaluation data" in markdown and inputs["eval_bundle"] in markdown
    # the RL section's own pass@1: 0.25 -> 0.5 on 100 problems, standard errors 0.0433 and 0.05
    assert "pass@1 0.2500 ± 0.0433 before RL, 0.5000 ± 0.0500 after: a change of +0.2500 ± 0.0661, beyond its error" \
        in markdown

    # the same change on 10 problems is within its error, and the card says so
    for source, acc in (("sft", 0.4), ("rl", 0.55)):
        write_chat_eval(root, source, {"Arithmetic": {"accuracy": acc, "stderr": standard_error(acc, 10),
                                                      "centered": acc, "num_problems": 10}}, skipped, step=8)
    markdown, data = build_report(TAG)
    assert not data["rl_held_out"]["beyond_error"] and "within its error: no change this run can show" in markdown
