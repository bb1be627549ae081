"""MMLU (Hendrycks et al.): 57 subjects, 4 choices, categorical; auxiliary_train is SFT data.

Local release: `<task-data>/mmlu/**/{dev,val,test}/<subject>_<split>.csv` and
`**/auxiliary_train/*.csv`, headerless rows `question, A, B, C, D, answer-letter`. Hub
(cais/mmlu, config `all`) parquet rows {question, subject, choices, answer: 0-3}; auxiliary_train
rows may be wrapped in a `train` field, as that config publishes them.
"""
from __future__ import annotations

from pathlib import Path

from nanochat_core.tasks.base import LETTERS, MultipleChoiceTask, multiple_choice_conversation
from nanochat_core.tasks.rows import TaskFileError, field, read_rows
from nanochat_core.tasks.task_data import HubSplit, resolve_files, task_data_root

# our split name -> (release file pattern, Hub split name in config `all`)
SPLITS = {
    "test": ("*_test.csv", "test"),
    "validation": ("*_val.csv", "validation"),
    "dev": ("*_dev.csv", "dev"),
    "auxiliary_train": ("auxiliary_train/*.csv", "auxiliary_train"),
}


def _from_csv(row: list, path: Path, i: int) -> tuple[str, list[str], int, str]:
    if len(row) != 6 or row[5].strip() not in LETTERS[:4]:
        raise TaskFileError(f"{path}: line {i + 1}: expected 6 columns (question, A, B, C, D, answer letter A-D)")
    subject = path.stem.rsplit("_", 1)[0] if path.parent.name != "auxiliary_train" else path.stem
    return row[0], row[1:5], LETTERS.index(row[5].strip()), subject


def _from_hub(row: dict, path: Path, i: int) -> tuple[str, list[str], int, str]:
    if isinstance(row, dict) and isinstance(row.get("train"), dict):
        row = row["train"]
    choices = field(row, "choices", path, i, list)
    answer = field(row, "answer", path, i, int)
    if not 0 <= answer < len(choices):
        raise TaskFileError(f"{path}: row {i + 1}: answer {answer} outside the {len(choices)} choices")
    return field(row, "question", path, i, str), [str(c) for c in choices], answer, str(row.get("subject") or "")


class MMLU(MultipleChoiceTask):
    def __init__(self, split: str, task_data=None, **slice_args):
        super().__init__(**slice_args)
        if split not in SPLITS:
            raise ValueError(f"MMLU split must be one of {sorted(SPLITS)}, got {split!r}")
        pattern, hub_split = SPLITS[split]
        self.name = "MMLU" if split != "auxiliary_train" else "MMLU-auxiliary_train"
        self.files = resolve_files(task_data_root(task_data), "mmlu", [pattern], HubSplit("cais/mmlu", "all", hub_split))
        self.items = []
        for path in self.files:
            parse = _from_csv if path.suffix == ".csv" else _from_hub
            self.items += [parse(row, path, i) for i, row in enumerate(read_rows(path))]

    def num_examples(self) -> int:
        return len(self.items)

    def get_example(self, index: int) -> dict:
        question, choices, answer, subject = self.items[index]
        return multiple_choice_conversation(question, choices, answer, subject=subject)
