"""GSM8K: grade-school math word problems, generative, graded on the number after `#### ` (worked_answer.py).

Local release: `<task-data>/gsm8k/**/{train,test}.jsonl`; Hub: openai/gsm8k config `main`. Both have
rows {question, answer}; the rows, their tool calls and the answer check are worked_answer.py's.
"""
from __future__ import annotations

from nanochat_core.tasks.rows import field, read_rows
from nanochat_core.tasks.task_data import HubSplit, resolve_files, task_data_root
from nanochat_core.tasks.worked_answer import WorkedAnswerTask


class GSM8K(WorkedAnswerTask):
    name = "GSM8K"

    def __init__(self, split: str, task_data=None, **slice_args):
        super().__init__(**slice_args)
        if split not in ("train", "test"):
            raise ValueError(f"GSM8K split must be 'train' or 'test', got {split!r}")
        self.files = resolve_files(task_data_root(task_data), "gsm8k", [f"{split}.jsonl"],
                                   HubSplit("openai/gsm8k", "main", split))
        self.items = [(field(row, "question", path, i, str), field(row, "answer", path, i, str))
                      for path in self.files for i, row in enumerate(read_rows(path))]
