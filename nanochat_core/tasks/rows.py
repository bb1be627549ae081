"""Read the rows of a task data file in whichever release format it comes in.

Parquet (what the Hugging Face Hub serves), JSON lines (optionally gzipped: GSM8K, ARC, HumanEval
releases) and headerless CSV (MMLU's release). A row that cannot be read stops with file and line:
an evaluation over silently fewer items would be wrong without anyone noticing.
"""
from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path


class TaskFileError(ValueError):
    """A task data file that is not in the format its task expects; the message names file and line."""


def read_rows(path: Path) -> list:
    name = path.name
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if name.endswith(".jsonl") or name.endswith(".jsonl.gz"):
        return _read_jsonl(path)
    if name.endswith(".csv"):
        return _read_csv(path)
    raise TaskFileError(f"{path}: unknown task file format (expected .parquet, .jsonl, .jsonl.gz or .csv)")


def _read_jsonl(path: Path) -> list:
    opener = gzip.open if path.name.endswith(".gz") else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise TaskFileError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
    return rows


def _read_csv(path: Path) -> list:
    with open(path, newline="", encoding="utf-8") as f:
        return [row for row in csv.reader(f)]


def field(row, name: str, path: Path, index: int, kind=None):
    """row[name], or a TaskFileError naming the file, the row and the field."""
    if not isinstance(row, dict) or name not in row:
        raise TaskFileError(f"{path}: row {index + 1} has no field {name!r}")
    value = row[name]
    if kind is not None and not isinstance(value, kind):
        raise TaskFileError(f"{path}: row {index + 1} field {name!r} should be {kind.__name__}, "
                            f"got {type(value).__name__}")
    return value
