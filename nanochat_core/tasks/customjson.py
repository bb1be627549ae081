"""CustomJSON: a JSONL file of conversations as a Task, for SFT mixtures.

Two line forms are read: ours, `{"messages": [...]}` with an optional "metadata" field beside it
(what gen_synthetic_data writes), and nanochat's bare array `[{"role": ..., "content": ...}, ...]`,
so a nanochat user's identity file works unchanged. Other top-level keys beside "messages" (a data
set's ids, a language tag) are ignored with one warning for the file naming them. Anything else
stops the read with the file and line number: a malformed line must fail before training starts, not
be skipped silently.
"""
from __future__ import annotations

from pathlib import Path

from nanochat_core.tokenizer.conversation import IgnoredKeys, parse_conversation_line, validate_messages


class CustomJSON:
    """All conversations of one JSONL file, read and checked up front (they are small)."""

    eval_type = "generative"

    def __init__(self, filepath):
        self.filepath = Path(filepath)
        if not self.filepath.is_file():
            raise FileNotFoundError(f"conversation file not found: {self.filepath}")
        self.name = f"CustomJSON({self.filepath.name})"
        self.conversations: list[dict] = []
        ignored = IgnoredKeys(self.filepath)
        with open(self.filepath, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue  # a blank line (e.g. a trailing one) carries no conversation
                try:
                    messages = validate_messages(parse_conversation_line(line, ignored)[0], allow_parts=True)
                except ValueError as e:
                    raise ValueError(f"{self.filepath}:{lineno}: {e}") from None
                self.conversations.append({"messages": messages})
        ignored.warn()

    def __len__(self) -> int:
        return len(self.conversations)

    def __getitem__(self, i: int) -> dict:
        return self.conversations[i]

    def evaluate(self, conversation: dict, completion: str) -> bool:
        # Identity/SFT data has no right answer to grade against; it is only ever trained on.
        raise NotImplementedError(f"{self.name} is training data and has no evaluation")
