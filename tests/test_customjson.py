"""CustomJSON reads both line forms and rejects anything else naming file and line."""
from __future__ import annotations

import json

import pytest

from nanochat_core.tokenizer.conversation import ConversationError, validate_messages
from nanochat_core.tasks.customjson import CustomJSON

U = {"role": "user", "content": "who are you?"}
A = {"role": "assistant", "content": "I am nanochat."}
S = {"role": "system", "content": "Be brief."}


def write(tmp_path, *lines):
    p = tmp_path / "data.jsonl"
    p.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return p


def test_both_forms_metadata_and_blank_lines(tmp_path):
    p = write(tmp_path, {"messages": [U, A]}, [U, A, U, A], "", {"messages": [S, U, A], "metadata": {"index": 3}})
    task = CustomJSON(p)
    assert len(task) == 3 and task.eval_type == "generative" and "data.jsonl" in task.name
    assert task[0] == {"messages": [U, A]}
    assert len(task[1]["messages"]) == 4
    assert task[2]["messages"][0]["role"] == "system" and "metadata" not in task[2]


def test_tool_call_parts_in_assistant_content(tmp_path):
    parts = [{"type": "text", "text": "Let me compute."}, {"type": "python", "text": "2+2"},
             {"type": "python_output", "text": "4"}, {"type": "text", "text": "It is 4."}]
    task = CustomJSON(write(tmp_path, [U, {"role": "assistant", "content": parts}]))
    assert task[0]["messages"][1]["content"] == parts


@pytest.mark.parametrize("bad, why", [
    ("{not json", "not valid JSON"),
    ({"text": "hello"}, "expected"),
    ({"messages": [U], "lang": "en"}, "at least 2"),  # extra keys never loosen the rules on messages
    ({"messages": [U, {"role": "assistant"}], "lang": "en"}, "'role' and 'content'"),
    (42, "expected"),
    ([U], "at least 2"),
    ([A, U], "expected role 'user'"),
    ([U, U], "expected role 'assistant'"),
    ([U, {"role": "assistant", "content": "  "}], "empty"),
    ([U, {"role": "assistant", "content": None}], "content must be"),
    ([U, A, S], "system message may only come first"),
    ([U, {"role": "bot", "content": "hi"}], "unknown role"),
    ([U, {"content": "no role"}], "'role' and 'content'"),
    ({"messages": "hi"}, "must be a list"),
])
def test_bad_lines_name_file_and_line(tmp_path, bad, why):
    p = write(tmp_path, [U, A], bad)
    with pytest.raises(ValueError) as err:
        CustomJSON(p)
    assert f"{p}:2:" in str(err.value) and why in str(err.value)


def test_extra_top_level_keys_are_ignored_with_one_warning_naming_them(tmp_path):
    # OASST-style lines: an id per line, a language on some; "metadata" is ours and never warned about.
    p = write(tmp_path, {"messages": [U, A], "message_tree_id": "t1", "lang": "en"},
              {"messages": [U, A], "message_tree_id": "t2"}, {"messages": [U, A], "metadata": {"index": 2}}, [U, A])
    with pytest.warns(UserWarning) as caught:
        task = CustomJSON(p)
    assert len(task) == 4 and task[0] == {"messages": [U, A]}  # what is trained on is only the messages
    assert len(caught) == 1, [str(w.message) for w in caught]
    message = str(caught[0].message)
    assert str(p) in message and "['lang', 'message_tree_id'] on 2 line(s)" in message


def test_no_warning_without_extra_keys(tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(CustomJSON(write(tmp_path, {"messages": [U, A], "metadata": {"i": 1}}, [U, A]))) == 2


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        CustomJSON(tmp_path / "nope.jsonl")


def test_generator_rules_are_stricter_about_parts():
    # The generator writes plain strings only; tool-call parts are for hand-made SFT files.
    with pytest.raises(ConversationError):
        validate_messages([U, {"role": "assistant", "content": [{"type": "text", "text": "x"}]}])
    assert validate_messages([{**U, "extra": 1}, A]) == [U, A]  # extra keys are dropped


def test_renders_with_the_tokenizer(tmp_path):
    from nanochat_core.tokenizer.bpe import Tokenizer

    tok = Tokenizer.train_from_iterator(iter(["hello world"] * 10), 265)
    ids, mask = tok.render_conversation(CustomJSON(write(tmp_path, [S, U, A]))[0])
    assert len(ids) == len(mask) and 1 in mask
