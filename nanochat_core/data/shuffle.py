"""A seeded global shuffle of a document stream that never holds the corpus in memory.

Pass 1 sends every document to one of NUM_BUCKETS spill files on disk, chosen by a seeded RNG.
Pass 2 reads the buckets back in order and permutes each in memory with its own seeded RNG.
Uniform random bucket assignment followed by a uniform permutation inside each bucket is a
uniform permutation of the whole corpus. A bucket too big for memory is split again the same way
(recursively), so memory stays bounded by BUCKET_BYTES whatever the corpus size. The result
depends only on the input order and the seed.

Spill files are Arrow IPC streams of one string column: written and read back at memory speed.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

NUM_BUCKETS = 64
BUCKET_BYTES = 256 * 1024 * 1024  # the largest bucket permuted in memory
CHUNK_DOCS = 8192  # documents per spill write (bounds pass-1 memory with CHUNK_BYTES)
CHUNK_BYTES = 32 * 1024 * 1024
MAX_KEY_DEPTH = 10  # four levels of re-splitting: 64**5 buckets
_SCHEMA = pa.schema([("text", pa.string())])


def _rng(seed: int, key: tuple[int, ...]) -> np.random.Generator:
    # One independent stream per (bucket path, purpose): no RNG state is shared between buckets.
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


@dataclass
class SpillStats:
    documents: int = 0
    characters: int = 0
    input_sha256: str = ""
    bucket_bytes: list[int] = field(default_factory=list)


class _BucketWriters:
    """NUM_BUCKETS open IPC stream writers under `folder`."""

    def __init__(self, folder: Path, prefix: str, n: int):
        folder.mkdir(parents=True, exist_ok=True)
        self.paths = [folder / f"{prefix}{i:03d}.arrow" for i in range(n)]
        self.writers = [pa.ipc.new_stream(str(p), _SCHEMA) for p in self.paths]
        self.nbytes = [0] * n

    def write(self, texts: pa.Array, buckets: np.ndarray) -> None:
        order = np.argsort(buckets, kind="stable")  # group by bucket, keeping input order inside
        grouped = texts.take(pa.array(order))
        counts = np.bincount(buckets, minlength=len(self.writers))
        start = 0
        for b, count in enumerate(counts.tolist()):
            if count:
                part = grouped.slice(start, count)
                self.writers[b].write_batch(pa.record_batch([part], schema=_SCHEMA))
                self.nbytes[b] += part.nbytes
                start += count

    def close(self) -> None:
        for w in self.writers:
            w.close()


def spill(documents: Iterable[str], folder: Path, seed: int, progress=None) -> SpillStats:
    """Pass 1: stream `documents` into random buckets under `folder`; count and hash them."""
    rng = _rng(seed, (0,))
    stats = SpillStats()
    digest = hashlib.sha256()
    writers = _BucketWriters(folder, "b", NUM_BUCKETS)
    try:
        chunk: list[str] = []
        chunk_bytes = 0
        for doc in documents:
            chunk.append(doc)
            chunk_bytes += len(doc)
            if len(chunk) >= CHUNK_DOCS or chunk_bytes >= CHUNK_BYTES:
                _spill_chunk(chunk, writers, rng, stats, digest, progress)
                chunk, chunk_bytes = [], 0
        if chunk:
            _spill_chunk(chunk, writers, rng, stats, digest, progress)
    finally:
        writers.close()
    stats.input_sha256 = digest.hexdigest()
    stats.bucket_bytes = writers.nbytes
    return stats


def _spill_chunk(chunk, writers, rng, stats, digest, progress) -> None:
    texts = pa.array(chunk, type=pa.string())
    for doc in chunk:  # length-prefixed, so document boundaries are part of the hash
        data = doc.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    writers.write(texts, rng.integers(0, NUM_BUCKETS, size=len(chunk)))
    stats.documents += len(chunk)
    stats.characters += pc.sum(pc.utf8_length(texts)).as_py() or 0
    if progress is not None:
        progress.update(len(chunk))


def shuffled(folder: Path, stats: SpillStats, seed: int) -> Iterator[pa.Array]:
    """Pass 2: the shuffled corpus as a sequence of string arrays; spill files are deleted as read."""
    for b, nbytes in enumerate(stats.bucket_bytes):
        yield from _shuffle_bucket(folder / f"b{b:03d}.arrow", nbytes, seed, (1, b))


def _read(path: Path) -> pa.ChunkedArray:
    with pa.ipc.open_stream(pa.memory_map(str(path))) as reader:
        return reader.read_all().column(0)


def _shuffle_bucket(path: Path, nbytes: int, seed: int, key: tuple[int, ...]) -> Iterator[pa.Array]:
    # The depth cap only matters for a bucket made of a few gigantic documents, which no split can shrink.
    if nbytes <= BUCKET_BYTES or len(key) >= MAX_KEY_DEPTH:
        texts = _read(path)
        path.unlink()
        if len(texts):
            yield texts.take(pa.array(_rng(seed, key).permutation(len(texts)))).combine_chunks()
        return
    # Too big for memory: re-spill this bucket into sub-buckets, batch by batch, and recurse.
    sub_folder = path.with_suffix(".split")
    rng = _rng(seed, key + (0,))
    writers = _BucketWriters(sub_folder, "b", NUM_BUCKETS)
    try:
        with pa.ipc.open_stream(pa.memory_map(str(path))) as reader:
            for batch in reader:
                writers.write(batch.column(0), rng.integers(0, NUM_BUCKETS, size=batch.num_rows))
    finally:
        writers.close()
    path.unlink()
    for b, sub_bytes in enumerate(writers.nbytes):
        yield from _shuffle_bucket(writers.paths[b], sub_bytes, seed, key + (1, b))
    sub_folder.rmdir()
