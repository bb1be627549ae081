"""Where raw documents come from: a `Source` is a description plus a streaming document iterator.

Every source yields one `str` per document and holds at most one parquet row group, one line or
one text line in memory, so corpora of any size stream through.
"""
from __future__ import annotations

import glob
import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

SUPPORTED_SUFFIXES = (".parquet", ".jsonl", ".jsonl.gz", ".json.gz", ".txt")


class SourceError(ValueError):
    """Bad input: the message names the file (and field or line) at fault."""


@dataclass
class Source:
    """`description` goes into manifest.json; `documents()` starts a fresh pass over the corpus."""

    description: dict
    documents: Callable[[], Iterator[str]]


def expand_inputs(patterns: Iterable[str]) -> list[Path]:
    """Files named by `patterns`: plain paths, directories (their supported files) or globs.

    Globs are expanded here (sorted, `**` recursive) so quoted patterns work the same on every shell.
    """
    files: list[Path] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(Path(m) for m in glob.glob(pattern, recursive=True) if Path(m).is_file())
            if not matches:
                raise SourceError(f"--input {pattern!r}: no files match this pattern")
            files.extend(matches)
        elif Path(pattern).is_dir():
            matches = sorted(p for p in Path(pattern).rglob("*") if p.is_file() and _suffix(p))
            if not matches:
                raise SourceError(f"--input {pattern!r}: folder holds no {', '.join(SUPPORTED_SUFFIXES)} files")
            files.extend(matches)
        elif Path(pattern).is_file():
            files.append(Path(pattern))
        else:
            raise SourceError(f"--input {pattern!r}: no such file")
    for path in files:
        if not _suffix(path):
            raise SourceError(f"{path}: unsupported file type (supported: {', '.join(SUPPORTED_SUFFIXES)})")
    return files


def local_source(patterns: Iterable[str], text_field: str = "text") -> Source:
    files = expand_inputs(patterns)
    return Source(
        description={"kind": "local", "files": [str(p) for p in files], "text_field": text_field},
        documents=lambda: iter_file_documents(files, text_field),
    )


def iter_file_documents(files: Iterable[Path], text_field: str = "text") -> Iterator[str]:
    """Documents of each file in turn; empty documents are skipped."""
    for path in files:
        suffix = _suffix(path)
        if suffix == ".parquet":
            docs = _parquet_documents(path, text_field)
        elif suffix == ".txt":
            docs = _txt_documents(path)
        else:
            docs = _jsonl_documents(path, text_field)
        for doc in docs:
            if doc:
                yield doc


def _suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in SUPPORTED_SUFFIXES if name.endswith(s)), None)


def _parquet_documents(path: Path, text_field: str) -> Iterator[str]:
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise SourceError(f"{path}: not a readable parquet file (corrupted or truncated?): {e}") from e
    names = pf.schema_arrow.names
    if text_field not in names:
        raise SourceError(f"{path}: no column {text_field!r} (columns: {names}); choose one with --text-field")
    for rg in range(pf.num_row_groups):
        try:
            column = pf.read_row_group(rg, columns=[text_field]).column(0)
        except (pa.ArrowException, OSError) as e:
            raise SourceError(f"{path}: row group {rg} is unreadable (corrupted parquet?): {e}") from e
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            raise SourceError(f"{path}: column {text_field!r} holds {column.type}, not text")
        yield from column.to_pylist()


def _jsonl_documents(path: Path, text_field: str) -> Iterator[str]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise SourceError(f"{path}:{lineno}: not valid JSON ({e.msg})") from e
                if not isinstance(record, dict) or text_field not in record:
                    raise SourceError(f"{path}:{lineno}: no field {text_field!r}; choose one with --text-field")
                text = record[text_field]
                if text is not None and not isinstance(text, str):
                    raise SourceError(f"{path}:{lineno}: field {text_field!r} is {type(text).__name__}, not text")
                yield text
    except (OSError, EOFError, UnicodeDecodeError) as e:  # gzip.BadGzipFile is an OSError
        raise SourceError(f"{path}: unreadable ({e})") from e


def _txt_documents(path: Path) -> Iterator[str]:
    # One document per non-empty line: the layout of one-article-per-line dumps such as wiki_demo.txt.
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\r\n")
                if line.strip():
                    yield line
    except UnicodeDecodeError as e:
        raise SourceError(f"{path}: not UTF-8 text ({e})") from e
