"""Repackaging: a document stream -> globally shuffled, zstd parquet shards + manifest.json.

Shard format (nanochat's): one `text` column, zstd level 3, row groups of `row_group_size`
documents, a new shard started once the current one holds `chars_per_shard` characters (at a
row-group boundary); the last shard is validation.

Nothing is half-written: spill files and shards are built in a staging folder beside the output
folder (same filesystem) and only moved in, manifest last, once everything succeeded.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from nanochat_core.common.atomic import atomic_path
from nanochat_core.data import shuffle
from nanochat_core.data.manifest import MANIFEST_NAME, ShardInfo, build_manifest, write_manifest
from nanochat_core.data.parquet_files import TEXT_COLUMN, shard_name
from nanochat_core.data.sources import Source
from nanochat_core.common.file_hash import file_sha256

DEFAULT_CHARS_PER_SHARD = 250_000_000
DEFAULT_ROW_GROUP_SIZE = 1024
DEFAULT_SEED = 42
SMALL_CORPUS_SHARDS = 10  # below this many target shards the validation split is 10% of documents
VAL_FRACTION = 0.1
_SCHEMA = pa.schema([(TEXT_COLUMN, pa.string())])


class RepackageError(ValueError):
    """The corpus cannot be turned into shards (e.g. it is empty); nothing was written."""


def plan_segments(documents: int, characters: int, chars_per_shard: int, row_group_size: int):
    """Split the shuffled documents into segments: [(count, cut_by_chars)], plus an info line.

    A big corpus is one segment cut every chars_per_shard characters; its remainder is the
    validation shard (nanochat's layout). A corpus smaller than ten target shards would give a
    single shard or a sliver of validation, so its validation shard is the last 10% of the
    documents instead (at least one row group, never more than half the corpus).
    """
    if characters >= SMALL_CORPUS_SHARDS * chars_per_shard:
        return [(documents, True)], "standard", None
    val = max(math.ceil(documents * VAL_FRACTION), min(row_group_size, documents // 2))
    note = (
        f"Info: the corpus ({characters:,} chars) is smaller than {SMALL_CORPUS_SHARDS} target shards "
        f"({SMALL_CORPUS_SHARDS} x --chars-per-shard {chars_per_shard:,}): the validation shard holds the last "
        f"{val:,} of {documents:,} shuffled documents (10%, at least one row group of {row_group_size:,}, "
        f"at most half); the other {documents - val:,} documents are split into train shards"
    )
    return [(documents - val, True), (val, False)], "small-corpus", note


class _Rows:
    """Takes exactly n rows at a time from a stream of arrays (zero-copy slices, then one concat)."""

    def __init__(self, arrays: Iterator[pa.Array]):
        self.arrays = arrays
        self.current: pa.Array | None = None
        self.offset = 0

    def take(self, n: int) -> pa.Array:
        parts = []
        while n > 0:
            if self.current is None or self.offset == len(self.current):
                self.current, self.offset = next(self.arrays), 0
            part = self.current.slice(self.offset, min(n, len(self.current) - self.offset))
            parts.append(part)
            self.offset += len(part)
            n -= len(part)
        return parts[0] if len(parts) == 1 else pa.concat_arrays(parts)


def _row_groups(arrays: Iterator[pa.Array], segments, row_group_size: int):
    rows = _Rows(arrays)
    for index, (count, _) in enumerate(segments):
        while count > 0:
            size = min(row_group_size, count)
            yield index, rows.take(size)
            count -= size


def write_shards(arrays, folder: Path, segments, chars_per_shard: int, row_group_size: int, bar) -> list[ShardInfo]:
    """Write row groups into shard files; a shard ends at a segment end or once it has enough chars."""
    groups = _row_groups(arrays, segments, row_group_size)
    pending = next(groups, None)
    shards: list[ShardInfo] = []
    while pending is not None:
        segment = pending[0]
        cut_by_chars = segments[segment][1]
        path = folder / shard_name(len(shards))
        rows = chars = n_groups = 0
        with atomic_path(path) as tmp:
            with pq.ParquetWriter(tmp, _SCHEMA, compression="zstd", compression_level=3, use_dictionary=False) as w:
                while pending is not None and pending[0] == segment and (not cut_by_chars or chars < chars_per_shard):
                    texts = pending[1]
                    w.write_table(pa.table([texts], schema=_SCHEMA), row_group_size=row_group_size)
                    rows += len(texts)
                    chars += pc.sum(pc.utf8_length(texts)).as_py() or 0
                    n_groups += 1
                    bar.update(len(texts))
                    pending = next(groups, None)
        shards.append(ShardInfo(path.name, "train", rows, n_groups, chars, path.stat().st_size, file_sha256(path)))
    shards[-1].split = "val"
    return shards


def size_notes(shards: list[ShardInfo], chars_per_shard: int) -> list[str]:
    """The seed's 'Shard too small/large' info lines, for shards far from the target size."""
    notes = []
    for s in shards:
        ratio = s.characters / chars_per_shard
        if ratio < 0.5 or ratio > 1.5:
            kind = "small" if ratio < 0.5 else "large"
            notes.append(
                f"Info: Shard too {kind}: {s.name} ({s.split}) holds {s.characters:,} chars, target "
                f"--chars-per-shard {chars_per_shard:,} (~250M chars gives ~100 MB zstd files)."
            )
    return notes


def repackage(
    source: Source,
    output_dir: Path,
    *,
    chars_per_shard: int = DEFAULT_CHARS_PER_SHARD,
    row_group_size: int = DEFAULT_ROW_GROUP_SIZE,
    seed: int = DEFAULT_SEED,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Shuffle `source` into shards in `output_dir`; returns the manifest (also written there)."""
    if chars_per_shard <= 0:
        raise RepackageError(f"--chars-per-shard must be positive, got {chars_per_shard}")
    if row_group_size <= 0:
        raise RepackageError(f"--row-group-size must be positive, got {row_group_size}")
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=output_dir.parent))
    try:
        with tqdm(desc="read + spill", unit="doc", disable=not progress) as bar:
            documents = (doc for doc in source.documents() if doc)  # empty documents carry no text
            stats = shuffle.spill(documents, staging / "spill", seed, bar)
        if stats.documents < 2:
            what = "is empty" if stats.documents == 0 else "has a single non-empty document"
            raise RepackageError(
                f"the corpus ({_describe(source)}) {what}: at least 2 documents are needed "
                "(one train shard and one validation shard)"
            )
        segments, layout, note = plan_segments(stats.documents, stats.characters, chars_per_shard, row_group_size)
        with tqdm(total=stats.documents, desc="shuffle + write", unit="doc", disable=not progress) as bar:
            shards = write_shards(shuffle.shuffled(staging / "spill", stats, seed), staging / "shards",
                                  segments, chars_per_shard, row_group_size, bar)
        manifest = build_manifest(source.description, stats.input_sha256, shards, seed=seed,
                                  row_group_size=row_group_size, chars_per_shard=chars_per_shard, layout=layout)
        _install(staging / "shards", output_dir, shards, manifest, log)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if note:
        log(f"{note}: {len(shards) - 1} train shard(s) + 1 validation shard.")
    for line in size_notes(shards, chars_per_shard):
        log(line)
    log(f"Wrote {len(shards)} shards ({manifest['documents']:,} documents, {manifest['characters']:,} chars) "
        f"to {output_dir}; the last one, {shards[-1].name}, is validation.")
    return manifest


def _describe(source: Source) -> str:
    d = source.description
    return d.get("kind", "?") + (f" {d['files']}" if d.get("files") else "")


def _install(staged: Path, output_dir: Path, shards: list[ShardInfo], manifest: dict, log) -> None:
    """Move finished shards into output_dir, replacing a previous run's shards; manifest last."""
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / MANIFEST_NAME).unlink(missing_ok=True)  # no manifest = folder incomplete, until we finish
    names = {s.name for s in shards}
    for old in output_dir.glob("shard_*.parquet"):
        if old.name not in names:
            old.unlink()  # a stale extra shard would silently become the "validation" shard
    for s in shards:
        os.replace(staged / s.name, output_dir / s.name)
    write_manifest(output_dir, manifest)
    strays = sorted(p.name for p in output_dir.glob("*.parquet") if p.name not in names and not p.name.startswith("."))
    if strays:
        log(f"Warning: {output_dir} also holds {strays}; loaders read every *.parquet there in sorted order.")
