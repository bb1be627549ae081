"""The shape every chat conversation must have, checked in one place.

The synthetic-data generator checks each conversation before writing it (and each line already in a
file it appends to) and the CustomJSON reader checks each line it reads, with these same functions, so a file the generator wrote always reads
back, and a hand-written file is held to the same rules (nanochat's: at least two turns,
user/assistant alternating from the user, non-empty text; an optional leading system message).

Real data sets carry more beside "messages" (OASST's message_tree_id, a lang field): those top-level
keys are ignored, and each reader says once per file which ones (IgnoredKeys); "messages" itself is
validated as strictly as ever.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

# Assistant content may also be a list of parts (tool calls and their outputs), as the tokenizer's
# render_conversation accepts; only readers of hand-made SFT data need that (allow_parts=True).
PART_TYPES = ("text", "python", "python_output")


class ConversationError(ValueError):
    """A conversation that breaks the rules above; the message says which rule and where."""


class IgnoredKeys:
    """The unknown top-level keys of one file's lines, collected while it is read; warn() says them once."""

    def __init__(self, path):
        self.path, self.keys, self.lines = Path(path), set(), 0

    def add(self, keys) -> None:
        if keys:
            self.keys |= set(keys)
            self.lines += 1

    def warn(self) -> None:
        if self.keys:
            warnings.warn(f"{self.path}: ignored top-level key(s) {sorted(self.keys)} on {self.lines:,} line(s); "
                          "only 'messages' (and 'metadata') are read", UserWarning, stacklevel=3)


def parse_conversation_line(line: str, ignored: IgnoredKeys | None = None):
    """One JSONL line -> (messages, metadata or None), unvalidated; ValueError when the form is wrong.

    Two forms: ours, {"messages": [...]} with an optional "metadata" beside it, and nanochat's bare
    array of messages. Any other top-level key is ignored and recorded in `ignored`.
    """
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e.msg} at column {e.colno})") from None
    if isinstance(obj, list):
        return obj, None
    if isinstance(obj, dict) and "messages" in obj:
        if ignored is not None:
            ignored.add(set(obj) - {"messages", "metadata"})
        return obj["messages"], obj.get("metadata")
    raise ValueError('expected {"messages": [...]} (optional "metadata") or a bare array of messages')


def validate_messages(messages, *, allow_parts: bool = False) -> list[dict]:
    """Return the messages as clean {"role", "content"} dicts, or raise ConversationError.

    Extra keys on a message are dropped (an API may add e.g. "refusal": null); what the model
    trains on is only role and content.
    """
    if not isinstance(messages, list):
        raise ConversationError(f"messages must be a list, got {type(messages).__name__}")
    clean = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or "role" not in msg or "content" not in msg:
            raise ConversationError(f"message {i} must be an object with 'role' and 'content'")
        role, content = msg["role"], msg["content"]
        if role == "system" and i != 0:
            raise ConversationError(f"message {i}: a system message may only come first")
        if role not in ("system", "user", "assistant"):
            raise ConversationError(f"message {i}: unknown role {role!r} (user, assistant, or a leading system)")
        _check_content(i, role, content, allow_parts)
        clean.append({"role": role, "content": content})
    turns = clean[1:] if clean and clean[0]["role"] == "system" else clean
    if len(turns) < 2:
        raise ConversationError(f"a conversation needs at least 2 user/assistant messages, got {len(turns)}")
    offset = len(clean) - len(turns)
    for j, msg in enumerate(turns):
        expected = "user" if j % 2 == 0 else "assistant"
        if msg["role"] != expected:
            raise ConversationError(
                f"message {j + offset}: expected role {expected!r}, got {msg['role']!r} "
                "(roles alternate user/assistant, starting with user)"
            )
    return clean


def _check_content(i: int, role: str, content, allow_parts: bool) -> None:
    if isinstance(content, str):
        if not content.strip():
            raise ConversationError(f"message {i} ({role}): content is empty")
        return
    if allow_parts and role == "assistant" and isinstance(content, list) and content:
        for k, part in enumerate(content):
            ok = (isinstance(part, dict) and part.get("type") in PART_TYPES
                  and isinstance(part.get("text"), str) and part["text"] != "")
            if not ok:
                raise ConversationError(
                    f"message {i} part {k}: expected {{'type': one of {PART_TYPES}, 'text': non-empty string}}"
                )
        return
    kind = "a non-empty string or a list of parts" if allow_parts and role == "assistant" else "a non-empty string"
    raise ConversationError(f"message {i} ({role}): content must be {kind}, got {type(content).__name__}")
