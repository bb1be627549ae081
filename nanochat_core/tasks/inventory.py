"""What task data is on hand: every chat source chat_sft and chat_eval read, found or not, and from where.

The pipeline's task_data asset shows this table in the UI; it also fetches what is missing (the
sources read through task_data.resolve_files, which downloads from the Hub when it can).
"""
from __future__ import annotations

import time
from pathlib import Path

from nanochat_core.tasks.arc import ARC
from nanochat_core.tasks.gsm8k import GSM8K
from nanochat_core.tasks.humaneval import HumanEval
from nanochat_core.tasks.mmlu import MMLU
from nanochat_core.tasks.smoltalk import SmolTalk
from nanochat_core.tasks.task_data import TaskDataMissing, task_data_root

# (name shown, who reads it, builder)
SOURCES = [
    ("SmolTalk train", "chat_sft", lambda d: SmolTalk("train", d)),
    ("SmolTalk test", "chat_sft (validation)", lambda d: SmolTalk("test", d)),
    ("MMLU auxiliary_train", "chat_sft", lambda d: MMLU("auxiliary_train", d)),
    ("MMLU test", "chat_eval, chat_sft (validation)", lambda d: MMLU("test", d)),
    ("GSM8K train", "chat_sft", lambda d: GSM8K("train", d)),
    ("GSM8K test", "chat_eval, chat_sft (validation)", lambda d: GSM8K("test", d)),
    ("ARC-Easy test", "chat_eval", lambda d: ARC("ARC-Easy", "test", d)),
    ("ARC-Challenge test", "chat_eval", lambda d: ARC("ARC-Challenge", "test", d)),
    ("HumanEval", "chat_eval", lambda d: HumanEval(d)),
]


def _origin(files: list[Path], root: Path) -> str:
    hub = root / "hub"
    return "Hugging Face Hub (cached)" if files and files[0].is_relative_to(hub) else "local release files"


def inventory(task_data=None, log=print) -> dict:
    """{name: {status "ok", rows, files, origin, used_by} | {status "missing", reason, used_by}}."""
    root = task_data_root(task_data)
    out = {}
    for name, used_by, build in SOURCES:
        t0 = time.time()
        try:
            task = build(root)
        except TaskDataMissing as e:
            out[name] = {"status": "missing", "reason": str(e), "used_by": used_by}
            log(f"{name}: missing ({e})")
            continue
        origin = _origin(task.files, root)
        out[name] = {"status": "ok", "rows": len(task), "files": [str(f) for f in task.files], "origin": origin,
                     "used_by": used_by}
        log(f"{name}: {len(task):,} rows from {origin} ({time.time() - t0:.1f}s)")
    return out
