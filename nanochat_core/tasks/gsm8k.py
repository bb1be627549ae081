"""GSM8K: grade-school math word problems, generative, graded on the number after `#### `.

Local release: `<task-data>/gsm8k/**/{train,test}.jsonl`; Hub: openai/gsm8k config `main`. Both have
rows {question, answer}. The reference answer's calculator annotations `<<48/2=24>>` become tool
calls in the assistant message (a python part `48/2` and its output `24`), so SFT teaches the
model to use the calculator the engine provides.
"""
from __future__ import annotations

import re

from nanochat_core.tasks.base import Task
from nanochat_core.tasks.rows import field, read_rows
from nanochat_core.tasks.task_data import HubSplit, resolve_files, task_data_root

ANNOTATION = re.compile(r"<<([^<>=]*)=([^<>]*)>>")
FINAL_ANSWER = re.compile(r"####\s*(-?[\d,]*\.?\d+)")


def extract_answer(text: str) -> str | None:
    """The number after the last `#### ` (commas dropped), or None."""
    found = FINAL_ANSWER.findall(text)
    return found[-1].replace(",", "") if found else None


def assistant_parts(answer: str) -> list[dict]:
    parts, pos = [], 0
    for m in ANNOTATION.finditer(answer):
        if m.start() > pos:
            parts.append({"type": "text", "text": answer[pos:m.start()]})
        parts.append({"type": "python", "text": m.group(1)})
        parts.append({"type": "python_output", "text": m.group(2)})
        pos = m.end()
    if pos < len(answer):
        parts.append({"type": "text", "text": answer[pos:]})
    return parts


class GSM8K(Task):
    eval_type = "generative"
    name = "GSM8K"

    def __init__(self, split: str, task_data=None, **slice_args):
        super().__init__(**slice_args)
        if split not in ("train", "test"):
            raise ValueError(f"GSM8K split must be 'train' or 'test', got {split!r}")
        self.files = resolve_files(task_data_root(task_data), "gsm8k", [f"{split}.jsonl"],
                                   HubSplit("openai/gsm8k", "main", split))
        self.items = [(field(row, "question", path, i, str), field(row, "answer", path, i, str))
                      for path in self.files for i, row in enumerate(read_rows(path))]

    def num_examples(self) -> int:
        return len(self.items)

    def get_example(self, index: int) -> dict:
        question, answer = self.items[index]
        return {"messages": [{"role": "user", "content": question},
                             {"role": "assistant", "content": assistant_parts(answer)}]}

    def evaluate(self, conversation: dict, completion: str) -> bool:
        parts = conversation["messages"][-1]["content"]
        reference = parts if isinstance(parts, str) else "".join(p["text"] for p in parts if p["type"] == "text")
        expected = extract_answer(reference)
        return expected is not None and extract_answer(completion) == expected
