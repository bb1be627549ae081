"""Writing conversations so that an interrupted run stays valid and can be continued.

Each conversation is one line, written and flushed the moment it is ready, so whatever is on disk
after Ctrl-C (or a crash) is complete lines. Which conversation a line is -- (seed, index) -- is
recorded in a sidecar, `<output>.progress.jsonl`, one `{"seed", "index", "sha256"}` line per
conversation, written right after it; the output file itself stays plain `{"messages": [...]}` as
readers expect (with --save-metadata the line's metadata holds seed and index too). --append counts
a (seed, index) as done only when a line with that hash is really in the output, so lines deleted or
edited by hand are regenerated, and a different --seed appends a fresh set of conversations.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from nanochat_core.tokenizer.conversation import IgnoredKeys, parse_conversation_line, validate_messages
from nanochat_core.synthetic.errors import ExistingOutputInvalid


def progress_path(output: Path) -> Path:
    return output.with_name(output.name + ".progress.jsonl")


def line_hash(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8")).hexdigest()[:16]


class ConversationWriter:
    """Appends validated conversations to the output and their identity to the sidecar."""

    def __init__(self, output: Path, seed: int, append: bool):
        self.output, self.progress, self.seed = output, progress_path(output), seed
        output.parent.mkdir(parents=True, exist_ok=True)
        self.done: set[int] = set()
        self.existing_lines = self.repaired_bytes = 0
        if append and output.exists():
            self._scan_existing()
        else:
            # A fresh run replaces the file (as nanochat does); its old sidecar goes with it.
            for path in (output, self.progress):
                path.write_text("", encoding="utf-8")
        self._out = open(output, "a", encoding="utf-8")
        self._prog = open(self.progress, "a", encoding="utf-8")

    def write(self, index: int, record: dict) -> None:
        line = json.dumps(record, ensure_ascii=False)
        self._out.write(line + "\n")
        self._out.flush()
        self._prog.write(json.dumps({"seed": self.seed, "index": index, "sha256": line_hash(line)}) + "\n")
        self._prog.flush()
        self.done.add(index)

    def close(self) -> None:
        self._out.close()
        self._prog.close()

    def _scan_existing(self) -> None:
        self.repaired_bytes = _drop_partial_last_line(self.output)
        _drop_partial_last_line(self.progress)
        hashes = set()
        ignored = IgnoredKeys(self.output)
        with open(self.output, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                line = line.rstrip("\n")
                if not line.strip():
                    continue
                try:
                    messages, metadata = parse_conversation_line(line, ignored)
                    validate_messages(messages, allow_parts=True)
                except ValueError as e:
                    raise ExistingOutputInvalid(
                        f"{self.output}:{lineno}: {e}\nFix or remove that line before --append, or run without --append "
                        "to start over."
                    ) from None
                self.existing_lines += 1
                hashes.add(line_hash(line))
                if isinstance(metadata, dict) and metadata.get("seed") == self.seed and isinstance(metadata.get("index"), int):
                    self.done.add(metadata["index"])
        ignored.warn()
        if self.progress.exists():
            for raw in self.progress.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(raw)
                    if entry["seed"] == self.seed and entry["sha256"] in hashes:
                        self.done.add(int(entry["index"]))
                except (ValueError, KeyError, TypeError):
                    continue  # a damaged sidecar line only means that conversation is made again


def _drop_partial_last_line(path: Path) -> int:
    """Cut an unfinished last line (a write cut short by a crash); return how many bytes went."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    with open(path, "r+b") as f:
        f.truncate(keep)
    return len(data) - keep
