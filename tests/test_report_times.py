"""The report card's training time, tok/s and MFU equal the training log's closing line, for base
training past nanochat's untimed first steps and for an SFT run shorter than them (where the card
used to say 0m00s): both come from the numbers the trainer records in the checkpoint meta."""
import re

import pytest

from nanochat_core.cli import base_train, chat_sft
from nanochat_core.report.card import write_report
from nanochat_core.report.markdown import _duration
from nanochat_core.report.sources import base_training_section, sft_section
from helpers import write_conversations
from train_fixtures import TINY_FLAGS, build_base

DONE = re.compile(r"^Training done: (\d+) steps in (\d+\.\d)s, ([\d,]+) tok/s, MFU (\d+\.\d\d)%", re.M)


def logged(out: str) -> tuple[str, str, str]:
    [(_, seconds, tok_per_sec, mfu)] = DONE.findall(out)
    return seconds, tok_per_sec, mfu


def as_logged(section: dict) -> tuple[str, str, str]:
    return f"{section['training_seconds']:.1f}", f"{section['tokens_per_sec']:,.0f}", f"{section['mfu']:.2f}"


@pytest.mark.slow
def test_card_times_equal_the_training_log(tmp_base_dir, capsys, monkeypatch, one_torch_thread):
    build_base(tmp_base_dir)
    assert base_train.main(TINY_FLAGS + ["--num-iterations", "14", "--eval-every", "-1"]) == 0
    base_log = logged(capsys.readouterr().out)
    section = base_training_section("d2", tmp_base_dir)
    assert as_logged(section) == base_log

    identity = write_conversations(tmp_base_dir / "identity_conversations.jsonl", 6, seed=1, tag="id")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert chat_sft.main(["--device-type", "cpu", "--peak-flops", "1e11", "--chatcore-every", "-1",
                          "--eval-every", "-1", "--max-seq-len", "64", "--total-batch-size", "256", "--compile", "0",
                          "--num-iterations", "3", "--identity", str(identity),
                          "--task-data", str(tmp_base_dir / "task_data")]) == 0
    sft_seconds = logged(capsys.readouterr().out)[0]
    sft = sft_section("d2", tmp_base_dir)
    # > 0 on the recorded seconds (the old card's bug recorded 0), not on the log's 0.1 s rounding: three tiny
    # steps can take under 0.05 s on a fast moment, and the log then rightly says 0.0s
    assert sft["training_seconds"] > 0 and f"{sft['training_seconds']:.1f}" == sft_seconds

    md_path, _ = write_report("d2", tmp_base_dir)
    _, tok_per_sec, mfu = base_log  # the card shows the very seconds the log rounded to 0.1 s
    base_line, sft_line = [line for line in md_path.read_text().splitlines() if line.startswith("- Training time ")]
    assert base_line == f"- Training time {_duration(section['training_seconds'])}; {tok_per_sec} tokens/s; MFU {mfu}%"
    assert sft_line.startswith(f"- Training time {_duration(sft['training_seconds'])}; ")


def test_nanochat_checkpoint_rate_counts_its_timed_steps():
    """A nanochat meta (no recorded throughput): its total_training_time covers steps 11..N-1."""
    from nanochat_core.report.sources import _throughput

    meta = {"loop_state": {"total_training_time": 20.0}, "peak_flops": 1e12, "world_size": 1}
    seconds, tok_per_sec, mfu = _throughput(meta, step=31, batch=1000, fpt=1e6)
    assert seconds == 20.0 and tok_per_sec == 20 * 1000 / 20.0 and mfu == pytest.approx(100 * 1e6 * 1000 / 1e12)
