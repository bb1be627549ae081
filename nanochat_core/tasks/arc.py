"""ARC-Easy and ARC-Challenge (AI2): grade-school science, 3 to 5 choices, categorical.

Local release: `<task-data>/arc/**/ARC-Easy-{Train,Dev,Test}.jsonl` rows
{id, question: {stem, choices: [{text, label}]}, answerKey}. Hub (allenai/ai2_arc) parquet rows
{id, question, choices: {text: [...], label: [...]}, answerKey}. Labels are letters or digits
("1".."4" in some items); the model always sees letters A.., and the gold is found by label.
"""
from __future__ import annotations

from pathlib import Path

from nanochat_core.tasks.base import MultipleChoiceTask, multiple_choice_conversation
from nanochat_core.tasks.rows import TaskFileError, field, read_rows
from nanochat_core.tasks.task_data import HubSplit, resolve_files, task_data_root

SUBSETS = ("ARC-Easy", "ARC-Challenge")
RELEASE_SPLIT = {"train": "Train", "validation": "Dev", "test": "Test"}


def _normalize(row, path: Path, i: int) -> tuple[str, list[str], int]:
    question = field(row, "question", path, i)
    if isinstance(question, dict):  # release format: choices nested in the question
        stem = field(question, "stem", path, i, str)
        choices = field(question, "choices", path, i, list)
        texts = [field(c, "text", path, i, str) for c in choices]
        labels = [str(field(c, "label", path, i)) for c in choices]
    else:  # hub format: parallel lists
        stem = question
        choices = field(row, "choices", path, i, dict)
        texts, labels = list(choices.get("text") or []), [str(x) for x in choices.get("label") or []]
    key = str(field(row, "answerKey", path, i))
    if not texts or len(texts) != len(labels) or key not in labels:
        raise TaskFileError(f"{path}: row {i + 1}: answerKey {key!r} is not one of the labels {labels}")
    return stem, texts, labels.index(key)


class ARC(MultipleChoiceTask):
    def __init__(self, subset: str, split: str, task_data=None, **slice_args):
        super().__init__(**slice_args)
        if subset not in SUBSETS:
            raise ValueError(f"ARC subset must be one of {SUBSETS}, got {subset!r}")
        if split not in RELEASE_SPLIT:
            raise ValueError(f"ARC split must be one of {sorted(RELEASE_SPLIT)}, got {split!r}")
        self.name = subset
        files = resolve_files(task_data_root(task_data), "arc", [f"{subset}-{RELEASE_SPLIT[split]}.jsonl"],
                              HubSplit("allenai/ai2_arc", subset, split))
        self.files = files
        self.items = [_normalize(row, path, i) for path in files for i, row in enumerate(read_rows(path))]

    def num_examples(self) -> int:
        return len(self.items)

    def get_example(self, index: int) -> dict:
        question, choices, answer = self.items[index]
        return multiple_choice_conversation(question, choices, answer)
