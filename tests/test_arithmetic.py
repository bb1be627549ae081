"""The offline arithmetic task: deterministic by seed, disjoint splits, GSM8K's answer form, working calculator calls."""
from __future__ import annotations

import re

import pytest

from nanochat_core.chat.calculator import use_calculator
from nanochat_core.tasks.arithmetic import Arithmetic, is_test_question
from nanochat_core.tasks.gsm8k import GSM8K
from nanochat_core.tasks.worked_answer import ANNOTATION
from nanochat_core.tokenizer.chat_render import render_conversation
from train_fixtures import write_tokenizer


def test_same_seed_same_problems_and_other_seed_others():
    a, b, c = Arithmetic("train", seed=3, size=200), Arithmetic("train", seed=3, size=200), Arithmetic("train", seed=4, size=200)
    assert a.items == b.items and a.items != c.items
    assert len({q for q, _ in a.items}) == 200  # distinct questions


def test_splits_are_disjoint_and_sized():
    train, test = Arithmetic("train", size=2000), Arithmetic("test")
    assert len(test) == 500 and len(train) == 2000
    assert not {q for q, _ in train.items} & {q for q, _ in test.items}
    assert all(is_test_question(q) for q, _ in test.items) and not any(is_test_question(q) for q, _ in train.items)


def test_reference_answers_are_right_and_use_the_calculator():
    task = Arithmetic("train", size=300)
    for question, answer in task.items:
        calls = ANNOTATION.findall(answer)
        assert calls, answer
        for expression, output in calls:  # what the engine's calculator gives back is what the row says
            assert str(use_calculator(expression)) == output, (expression, output)
        numbers = [int(n) for n in re.findall(r"\d+", question)]
        final = int(answer.rsplit("#### ", 1)[1])
        assert str(final) == calls[-1][1] and all(0 < n for n in numbers)


def test_grading_is_gsm8ks():
    task = Arithmetic("test", size=20)
    conv = task[0]
    answer = task.items[0][1].rsplit("#### ", 1)[1]
    assert task.evaluate(conv, f"so it is #### {answer}") and not task.evaluate(conv, f"#### {int(answer) + 1}")
    assert not task.evaluate(conv, f"{answer}")  # no `#### ` marker, no credit
    # the same conversation graded as GSM8K grades it
    assert GSM8K.evaluate(task, conv, f"#### {answer}")


def test_rows_render_for_sft_with_supervised_tool_calls(tmp_path):
    task = Arithmetic("train", size=5)
    tok = write_tokenizer(tmp_path / "tok", [q + a for q, a in task.items], 270)
    ids, mask = render_conversation(tok, task[0])
    start, end = tok.encode_special("<|python_start|>"), tok.encode_special("<|output_start|>")
    assert mask[ids.index(start)] == 1 and mask[ids.index(end)] == 0


def test_bad_arguments_are_refused_clearly():
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        Arithmetic("validation")
    with pytest.raises(ValueError, match="only .* distinct train problems with max_operand 2"):
        Arithmetic("train", size=5000, max_operand=2)


def test_sft_mixture_takes_the_arithmetic_rows_only_when_asked(tmp_path, monkeypatch):
    from nanochat_core.tasks import task_data
    from nanochat_core.train.sft_mixture import build_sft_data
    from helpers import write_conversations

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(task_data, "_unreachable", None)
    identity = write_conversations(tmp_path / "identity.jsonl", 20, seed=0, tag="id")
    without = build_sft_data(tmp_path / "task_data", identity, [], 0, 0)
    assert [s.name for s in without.sources] == [f"identity {identity}"]
    data = build_sft_data(tmp_path / "task_data", identity, [], 0, 0, arithmetic_epochs=2)
    arithmetic = next(s for s in data.sources if s.name == "Arithmetic train")
    # no test split offline: 2% of each source is held out for validation, the rest trained on twice
    assert arithmetic.epochs == 2 and len(arithmetic.task) == 4900
    assert len(data.train) == 2 * 4900 + 2 * (20 - 1)
    tool_calls = [p for i in range(50) for m in data.train[i]["messages"] if isinstance(m["content"], list)
                  for p in m["content"] if p["type"] == "python"]
    assert tool_calls  # the rows keep their calculator calls


def test_chat_eval_arithmetic_is_the_test_split_that_training_never_sees():
    from nanochat_core.tasks.registry import BASELINES, load_eval_task

    evaluated = load_eval_task("Arithmetic")
    assert isinstance(evaluated, Arithmetic) and evaluated.split == "test" and len(evaluated) == 500
    # everything SFT's mixture and RL train on comes from the train split (seed 0, all 5000 problems)
    trained = Arithmetic("train")
    assert not {q for q, _ in evaluated.items} & {q for q, _ in trained.items}
    assert BASELINES["Arithmetic"] == 0.0  # generative: no chance score to center on


def test_a_plain_string_reference_is_graded_like_a_worked_one():
    task = Arithmetic("test", size=3)
    question, answer = task.items[0]
    final = answer.rsplit("#### ", 1)[1]
    plain = {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}
    assert task.evaluate(plain, f"#### {final}") and task.evaluate(task[0], f"#### {final}")
    assert not task.evaluate(plain, f"#### {int(final) + 1}")
