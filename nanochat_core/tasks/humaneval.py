"""HumanEval (OpenAI): 164 Python functions to complete, graded by running their tests in the sandbox.

Local release: `<task-data>/humaneval/**/HumanEval.jsonl(.gz)`; Hub: openai/openai_humaneval.
Rows {task_id, prompt, canonical_solution, test, entry_point}. The user message is the prompt;
the reference assistant message is prompt + canonical solution (a whole runnable function).
"""
from __future__ import annotations

from nanochat_core.tasks.base import Task
from nanochat_core.tasks.rows import field, read_rows
from nanochat_core.tasks.task_data import HubSplit, resolve_files, task_data_root

FIELDS = ("task_id", "prompt", "canonical_solution", "test", "entry_point")


class HumanEval(Task):
    eval_type = "generative"
    name = "HumanEval"

    def __init__(self, task_data=None, timeout_s: float = 5.0, **slice_args):
        super().__init__(**slice_args)
        self.timeout_s = timeout_s
        self.files = resolve_files(task_data_root(task_data), "humaneval", ["HumanEval.jsonl", "HumanEval.jsonl.gz"],
                                   HubSplit("openai/openai_humaneval", "openai_humaneval", "test"))
        self.items = [{k: field(row, k, path, i, str) for k in FIELDS}
                      for path in self.files[:1] for i, row in enumerate(read_rows(path))]

    def num_examples(self) -> int:
        return len(self.items)

    def get_example(self, index: int) -> dict:
        item = self.items[index]
        return {"messages": [{"role": "user", "content": item["prompt"]},
                             {"role": "assistant", "content": item["prompt"] + item["canonical_solution"]}],
                **item}

    def evaluate(self, conversation: dict, completion: str) -> bool:
        from nanochat_core.execution.humaneval_program import humaneval_program
        from nanochat_core.execution.sandbox import run_untrusted

        program = humaneval_program(conversation["prompt"], completion, conversation["test"],
                                    conversation["entry_point"])
        return run_untrusted(program, timeout_s=self.timeout_s).passed
