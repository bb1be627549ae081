"""The SFT mixture: release-format sources, epochs, determinism, absent sources reported, validation fallback."""
from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from nanochat_core.tasks import task_data
from nanochat_core.train.sft_mixture import build_sft_data
from helpers import write_conversations, write_task_data


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    # Absent sources must be reported without trying the network (there is none here).
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(task_data, "_unreachable", None)


def key(conversation) -> str:
    return json.dumps(conversation["messages"])


def source_tag(conversation) -> str:
    """The tag helpers.write_task_data puts before each item's index in its first user message (st3, ma0, ...)."""
    return re.search(r"\b([a-z]{2})\d+ ", conversation["messages"][0]["content"]).group(1)


def test_mixture_is_deterministic_and_repeats_each_source_its_epochs(tmp_path):
    td = write_task_data(tmp_path / "td", smoltalk=(7, 3), mmlu=(4, 5), gsm8k=(3, 2))
    identity = write_conversations(tmp_path / "identity.jsonl", 2, seed=1, tag="id")
    mine = write_conversations(tmp_path / "mine.jsonl", 5, seed=2, tag="my")
    data = build_sft_data(td, identity, [str(mine)], mmlu_epochs=3, gsm8k_epochs=4)
    again = build_sft_data(td, identity, [str(mine)], mmlu_epochs=3, gsm8k_epochs=4)
    order = [key(c) for c in data.train]
    assert order == [key(c) for c in again.train]
    assert order != [key(c) for c in build_sft_data(td, identity, [str(mine)], 3, 4, seed=7).train]
    assert len(order) == 7 + 4 * 3 + 3 * 4 + 2 * 2 + 5
    tags = [source_tag(c) for c in data.train]
    counts = Counter(zip(tags, order))
    repeats = {tag: sorted(n for (t, _), n in counts.items() if t == tag) for tag in set(tags)}
    # every item of a source, exactly its number of epochs: MMLU x3, GSM8K x4, identity x2
    assert repeats == {"st": [1] * 7, "ma": [3] * 4, "ga": [4] * 3, "id": [2] * 2, "my": [1] * 5}
    assert [i for i, t in enumerate(tags) if t == "st"] != list(range(7))  # shuffled, not source by source
    assert [(s["name"].split(" ")[0], s["conversations"], s["epochs"]) for s in data.meta()["sources"]] == [
        ("SmolTalk", 7, 1), ("MMLU", 4, 3), ("GSM8K", 3, 4), ("identity", 2, 2), ("CustomJSON", 5, 1)]
    lines = data.report_lines()
    assert lines[0] == "SFT mixture: 40 conversations, shuffled with seed 42"
    assert "  MMLU auxiliary_train: 4 conversations x 3 epochs = 12" in lines
    assert f"  CustomJSON {mine}: 5 conversations" in lines
    assert [len(s.task) for s in data.val_sources] == [3, 5, 2] and len(data.val) == 10


def test_absent_sources_are_reported_and_left_out(tmp_path):
    td = write_task_data(tmp_path / "td", smoltalk=(None, None), mmlu=(None, 2), gsm8k=(3, None))
    data = build_sft_data(td, tmp_path / "no_identity.jsonl", [], mmlu_epochs=3, gsm8k_epochs=1)
    assert [s.name for s in data.sources] == ["GSM8K train"]
    left = {m["name"]: m["reason"] for m in data.left_out}
    assert set(left) == {"SmolTalk train", "MMLU auxiliary_train", f"identity {tmp_path / 'no_identity.jsonl'}"}
    assert "HF_HUB_OFFLINE" in left["SmolTalk train"] and "no_identity.jsonl" in left[f"identity {tmp_path / 'no_identity.jsonl'}"]
    text = "\n".join(data.report_lines())
    assert "left out: SmolTalk train:" in text and "left out: SmolTalk test:" in text
    assert [s.name for s in data.val_sources] == ["MMLU test"]
    zero = build_sft_data(td, None, [], mmlu_epochs=0, gsm8k_epochs=2)
    assert {"name": "MMLU auxiliary_train", "reason": "0 epochs asked for"} in zero.left_out


def test_without_test_splits_validation_is_held_out_of_training(tmp_path):
    td = write_task_data(tmp_path / "td", smoltalk=(60, None), mmlu=(None, None), gsm8k=(None, None))
    small = write_conversations(tmp_path / "small.jsonl", 4, seed=3, tag="sm")
    data = build_sft_data(td, None, [str(small)], 3, 4)
    held = {key(c) for c in data.val}
    assert len(held) == 1 and len(data.val) == 1  # 2% of SmolTalk's 60; the 4-conversation file is kept whole
    assert not held & {key(c) for c in data.train} and len(data.train) == 59 + 4
    assert "held out the last 2%" in data.val_note
    alone = build_sft_data(tmp_path / "empty", None, [str(small)], 3, 4)
    assert alone.val is None and "val bpb is skipped" in "\n".join(alone.report_lines())


def test_named_files_must_exist_and_parse_and_some_data_must_remain(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
                   '{"messages": [{"role": "user", "content": "only one turn"}]}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: .*at least 2"):
        build_sft_data(tmp_path, None, [str(bad)], 3, 4)
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        build_sft_data(tmp_path, None, [str(tmp_path / "nope.jsonl")], 3, 4)
    with pytest.raises(ValueError, match="no SFT data to train on .*SmolTalk train"):
        build_sft_data(tmp_path, None, [], 3, 4)
