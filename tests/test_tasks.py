"""Chat task data: release formats read right, the Hub path through a fake Hub, clear errors, the mixture."""
from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fake_hub import serving
from helpers import write_jsonl
from nanochat_core.tasks import task_data
from nanochat_core.tasks.arc import ARC
from nanochat_core.tasks.gsm8k import GSM8K
from nanochat_core.tasks.worked_answer import extract_answer
from nanochat_core.tasks.mixture import TaskMixture
from nanochat_core.tasks.mmlu import MMLU
from nanochat_core.tasks.rows import TaskFileError
from nanochat_core.tasks.smoltalk import SmolTalk
from nanochat_core.tasks.task_data import TaskDataMissing


@pytest.fixture(autouse=True)
def hub_reachable(monkeypatch):
    monkeypatch.setattr(task_data, "_unreachable", None)


def parquet(rows) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


def arc_row(labels, key):
    return {"id": "x", "question": {"stem": "Q?", "choices": [{"text": f"t{l}", "label": l} for l in labels]},
            "answerKey": key}


def test_arc_release_numeric_labels_and_odd_choice_counts(tmp_path):
    write_jsonl(tmp_path / "arc" / "ARC-Easy" / "ARC-Easy-Test.jsonl",
                [arc_row("1234", "3"), arc_row("ABC", "C"), arc_row("ABCDE", "E")])
    task = ARC("ARC-Easy", "test", tmp_path)
    assert [t["letters"] for t in task] == [list("ABCD"), list("ABC"), list("ABCDE")]
    assert [t["messages"][1]["content"] for t in task] == ["C", "C", "E"]
    assert "- t3=C" in task[0]["messages"][0]["content"]  # the gold text sits next to the gold letter
    assert task.evaluate(task[0], " C") and not task.evaluate(task[0], "A")


def test_arc_bad_answer_key_names_file_and_row(tmp_path):
    path = tmp_path / "arc" / "ARC-Challenge-Dev.jsonl"
    write_jsonl(path, [arc_row("ABCD", "A"), arc_row("ABCD", "F")])
    with pytest.raises(TaskFileError, match=r"ARC-Challenge-Dev.jsonl: row 2: answerKey 'F'"):
        ARC("ARC-Challenge", "validation", tmp_path)


def test_mmlu_release_csv_subjects_and_errors(tmp_path):
    test_dir = tmp_path / "mmlu" / "data" / "test"
    test_dir.mkdir(parents=True)
    (test_dir / "virology_test.csv").write_text('"Why, really?",a,b,c,d,B\n')
    (test_dir / "college_physics_test.csv").write_text("Q1,a,b,c,d,D\n")
    (tmp_path / "mmlu" / "data" / "dev").mkdir()
    (tmp_path / "mmlu" / "data" / "dev" / "virology_dev.csv").write_text("not,this,split,a,b,A\n")
    task = MMLU("test", tmp_path)
    assert [(t["subject"], t["messages"][1]["content"]) for t in task] == [("college_physics", "D"), ("virology", "B")]
    assert "Why, really?" in task[1]["messages"][0]["content"]
    (test_dir / "zoology_test.csv").write_text("Q,a,b,c,D\n")
    with pytest.raises(TaskFileError, match=r"zoology_test.csv: line 1: expected 6 columns"):
        MMLU("test", tmp_path)


def test_gsm8k_calculator_annotations_become_tool_calls(tmp_path):
    answer = "She sold 48/2 = <<48/2=24>>24 clips.\nIn all 48+24 = <<48+24=72>>72.\n#### 1,072"
    write_jsonl(tmp_path / "gsm8k" / "data" / "train.jsonl", [{"question": "How many?", "answer": answer}])
    conv = GSM8K("train", tmp_path)[0]
    parts = conv["messages"][1]["content"]
    assert [p["type"] for p in parts] == ["text", "python", "python_output", "text", "python", "python_output", "text"]
    assert parts[1]["text"] == "48/2" and parts[2]["text"] == "24"
    assert "".join(p["text"] for p in parts if p["type"] != "python").replace("2424", "24") != answer  # not verbatim
    task = GSM8K("train", tmp_path)
    assert task.evaluate(conv, "so the answer is\n#### 1072") and not task.evaluate(conv, "#### 1071")
    assert extract_answer("#### -3.5 and then #### 12") == "12" and extract_answer("no answer") is None


def test_hub_download_is_cached_and_a_partial_one_is_resumed(tmp_path, monkeypatch):
    rows = [{"question": f"q{i}", "answer": f"#### {i}"} for i in range(3)]
    repos = {"openai/gsm8k": {"main/test-00000-of-00001.parquet": parquet(rows),
                              "main/train-00000-of-00001.parquet": parquet(rows[:1])}}
    with serving(monkeypatch, repos) as hub:
        task = GSM8K("test", tmp_path)
        assert len(task) == 3 and task.files[0].is_relative_to(tmp_path / "hub" / "openai/gsm8k")
        downloads = [r for r in hub.requests if r[0] == "GET" and "/resolve/" in r[1]]
        assert len(downloads) == 1 and all(auth == "Bearer hf_test_token" for _, _, auth in downloads)  # HF_TOKEN sent
        n = len(hub.requests)
        assert len(GSM8K("test", tmp_path)) == 3 and len(hub.requests) == n  # cached: no request at all
        # Without the completion record (a download cut short) the files are fetched again.
        next((tmp_path / "hub" / "openai/gsm8k").glob(".complete-*")).unlink()
        assert len(GSM8K("test", tmp_path)) == 3 and len(hub.requests) > n


def test_hub_mmlu_auxiliary_rows_wrapped_in_train(tmp_path, monkeypatch):
    row = {"question": "Q", "subject": "", "choices": ["a", "b", "c", "d"], "answer": 2}
    repos = {"cais/mmlu": {"all/auxiliary_train-00000-of-00001.parquet": parquet([{"train": row}] * 2)}}
    with serving(monkeypatch, repos):
        task = MMLU("auxiliary_train", tmp_path)
    assert len(task) == 2 and task[0]["messages"][1]["content"] == "C"


def test_missing_task_data_says_what_was_tried(tmp_path, monkeypatch):
    with serving(monkeypatch, {}):
        with pytest.raises(TaskDataMissing, match=r"HuggingFaceTB/smol-smoltalk.*smoltalk"):
            SmolTalk("train", tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TaskDataMissing, match="HF_HUB_OFFLINE is set"):
        SmolTalk("test", tmp_path)


def test_local_chat_messages_and_invalid_conversation(tmp_path):
    convs = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}]
    write_jsonl(tmp_path / "smoltalk" / "my_train.jsonl", convs)
    assert SmolTalk("train", tmp_path)[0]["messages"][1]["content"] == "hello"
    write_jsonl(tmp_path / "smoltalk" / "my_test.jsonl", [{"messages": [{"role": "assistant", "content": "x"}]}])
    with pytest.raises(TaskFileError, match=r"my_test.jsonl: row 1"):
        SmolTalk("test", tmp_path)


class Numbers:
    def __init__(self, name, n):
        self.items = [f"{name}{i}" for i in range(n)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_mixture_is_deterministic_and_repeats_epochs():
    a, b = Numbers("a", 5), Numbers("b", 3)
    mix = TaskMixture([a, b, b], seed=42)
    items = [mix[i] for i in range(len(mix))]
    assert len(items) == 11 and sorted(items) == sorted(a.items + b.items * 2)
    assert items == [TaskMixture([a, b, b], seed=42)[i] for i in range(11)]
    assert items != [TaskMixture([a, b, b], seed=7)[i] for i in range(11)]
    assert items[:5] != a.items  # shuffled, not concatenated
