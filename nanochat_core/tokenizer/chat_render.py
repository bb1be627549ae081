"""Render a chat conversation to token ids plus a loss mask (the rules of nanochat's nanochat/tokenizer.py render_conversation).

mask 1 = the model is trained to predict this token (what the assistant writes: its text, its
python tool calls, <|assistant_end|>); mask 0 = context it is given (bos, user turns,
<|assistant_start|>, tool outputs, which come from the python interpreter, not the model).
"""
from __future__ import annotations

import copy

from nanochat_core.tokenizer.conversation import PART_TYPES


def _normalize_messages(conversation: dict) -> list[dict]:
    """Merge a leading system message into the first user turn and check roles alternate."""
    if not isinstance(conversation, dict) or not isinstance(conversation.get("messages"), list):
        raise ValueError('conversation must be a dict {"messages": [...]}')
    messages = conversation["messages"]
    if not messages:
        raise ValueError("conversation has no messages")
    if messages[0].get("role") == "system":
        # nanochat has no system role: the system text is prepended to the first user message.
        if len(messages) < 2 or messages[1].get("role") != "user":
            raise ValueError("a system message must be followed by a user message")
        first_user = dict(messages[1], content=messages[0]["content"] + "\n\n" + messages[1]["content"])
        messages = [first_user] + list(messages[2:])
    for i, message in enumerate(messages):
        expected = "user" if i % 2 == 0 else "assistant"
        role = message.get("role")
        if role != expected:
            hint = " (a system message is only allowed first)" if role == "system" else ""
            raise ValueError(
                f"message {i} has role {role!r}, expected {expected!r}: roles must alternate user/assistant "
                f"starting with user{hint}"
            )
    return messages


def render_conversation(tokenizer, conversation: dict, max_tokens: int = 2048) -> tuple[list[int], list[int]]:
    """Return (ids, mask), both truncated to max_tokens."""
    messages = _normalize_messages(conversation)
    special = tokenizer.encode_special
    ids: list[int] = []
    mask: list[int] = []

    def add(token_ids, mask_value: int) -> None:
        if isinstance(token_ids, int):
            token_ids = [token_ids]
        ids.extend(token_ids)
        mask.extend([mask_value] * len(token_ids))

    add(tokenizer.get_bos_token_id(), 0)
    for i, message in enumerate(messages):
        content = message.get("content")
        if message["role"] == "user":
            if not isinstance(content, str):
                raise ValueError(f"message {i}: user content must be a string, got {type(content).__name__}")
            add(special("<|user_start|>"), 0)
            add(tokenizer.encode(content), 0)
            add(special("<|user_end|>"), 0)
            continue
        add(special("<|assistant_start|>"), 0)
        if isinstance(content, str):
            add(tokenizer.encode(content), 1)
        elif isinstance(content, list):
            for part in content:
                _add_part(tokenizer, add, part, i)
        else:
            raise ValueError(f"message {i}: assistant content must be a string or a list of parts")
        add(special("<|assistant_end|>"), 1)
    return ids[:max_tokens], mask[:max_tokens]


def _add_part(tokenizer, add, part: dict, i: int) -> None:
    special = tokenizer.encode_special
    kind = part.get("type") if isinstance(part, dict) else None
    if kind not in PART_TYPES:
        raise ValueError(f"message {i}: unknown assistant part {part!r} (type must be text, python or python_output)")
    value = tokenizer.encode(part["text"])
    if kind == "text":
        add(value, 1)
    elif kind == "python":  # the model writes the tool call: supervised
        add(special("<|python_start|>"), 1)
        add(value, 1)
        add(special("<|python_end|>"), 1)
    else:  # the interpreter writes the output: context only
        add(special("<|output_start|>"), 0)
        add(value, 0)
        add(special("<|output_end|>"), 0)


def render_for_completion(tokenizer, conversation: dict) -> list[int]:
    """Prompt ids for sampling: drop the final assistant message, end with <|assistant_start|>."""
    conversation = copy.deepcopy(conversation)
    messages = conversation.get("messages") or []
    if not messages or messages[-1].get("role") != "assistant":
        raise ValueError("render_for_completion expects the last message to be the assistant's")
    messages.pop()
    ids, _ = render_conversation(tokenizer, conversation, max_tokens=10**9)
    return ids + [tokenizer.encode_special("<|assistant_start|>")]
