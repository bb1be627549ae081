"""Pretraining data loader: BOS-aligned best-fit packing over the parquet shards (nanochat's nanochat/dataloader.py).

Rank r of W reads row groups r, r+W, ... of each split file in sorted order, forever (epoch
counts from 1). Each row group's texts are tokenized in chunks of `tokenizer_batch_size`
documents with BOS prepended and appended to a document buffer. Rows of T+1 tokens are packed
one at a time: before each placement the buffer is topped up to `buffer_size` documents; the
longest document that fits whole goes in (earliest among equals); when none fits, the shortest
(earliest among equals) is cropped to fill the row exactly and its remainder dropped. Following
this exactly gives nanochat's batches for the same shards and tokenizer.

Resume state (JSON-serializable), yielded with every batch:
    pq_idx, rg_idx, epoch  nanochat's keys: the row group of the last tokenized chunk
    next_row               first row of the next chunk inside that row group
    rank, world_size       whose position this is (row groups are rank-strided)
    buffer                 [[pq_idx, rg_idx, hex_row_mask], ...]: the buffered documents in
                           arrival order (rows ascending within an entry); they are always
                           whole, so they are re-read and re-tokenized on resume.
A state with the first three keys only (a nanochat checkpoint) resumes nanochat's way: empty
buffer, at the row group after rg_idx for this rank.

Evaluation (validation bpb, base_eval's bpb) reads through evaluation_loader instead: every rank
packs the one-process stream and keeps batches rank, rank+W, ..., so W ranks together score exactly
the batches one process scores (the summed nats and bytes are equal, the result too), whatever the
number of row groups (a small validation shard may have a single one). Each rank tokenizes the whole
evaluated prefix: a few times more tokenizer work for a validation, in exchange for a val_bpb that
does not depend on how many processes a cell was trained with.

Tokenized chunks are kept in a process-wide TokenCache (token_cache.py, bounded by a token budget):
a later epoch, a resume's buffer and a repeated validation take them from memory and never re-read
their row group. Tokenizing a document does not depend on its neighbours, so the batches and states
are the same with and without the cache.
"""
from __future__ import annotations

import itertools
import warnings
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from nanochat_core.data.best_fit import BestFitBuffer
from nanochat_core.data.parquet_files import TEXT_COLUMN, split_files
from nanochat_core.data.token_cache import TokenCache, shared_cache

_NANOCHAT_KEYS = ("pq_idx", "rg_idx", "epoch")


class _Shards:
    """The split's parquet files, validated up front; reads one row group's texts at a time."""

    def __init__(self, files: list[Path]):
        self.files = [Path(f) for f in files]
        self.rg_rows: list[list[int]] = []  # rows per row group, per file (from the footers)
        self.keys: list[tuple] = []  # what identifies each file's contents for the token cache
        for path in self.files:
            try:
                meta = pq.read_metadata(path)
                names = meta.schema.to_arrow_schema().names
            except (pa.ArrowException, OSError) as e:
                raise ValueError(f"{path}: not a readable parquet file (corrupted or truncated?): {e}") from e
            if TEXT_COLUMN not in names:
                raise ValueError(f"{path}: no '{TEXT_COLUMN}' column (columns: {names})")
            if meta.num_rows == 0:
                raise ValueError(f"{path}: empty shard (0 documents); re-run repackage_data")
            self.rg_rows.append([meta.row_group(i).num_rows for i in range(meta.num_row_groups)])
            st = path.stat()
            self.keys.append((str(path.resolve()), st.st_size, st.st_mtime_ns))
        self._open: tuple[int, pq.ParquetFile] | None = None  # one file open at a time
        self._last: tuple[int, int, list[str]] | None = None  # the last row group read

    def __len__(self) -> int:
        return len(self.files)

    def read(self, pq_idx: int, rg_idx: int) -> list[str]:
        if self._last is not None and self._last[:2] == (pq_idx, rg_idx):
            return self._last[2]
        path = self.files[pq_idx]
        try:
            if self._open is None or self._open[0] != pq_idx:
                self._open = (pq_idx, pq.ParquetFile(path))
            texts = self._open[1].read_row_group(rg_idx, columns=[TEXT_COLUMN]).column(0).to_pylist()
        except (pa.ArrowException, OSError) as e:
            raise ValueError(f"{path}: cannot read row group {rg_idx} (corrupted file?): {e}") from e
        if any(t is None for t in texts):
            raise ValueError(f"{path}: row group {rg_idx} has null '{TEXT_COLUMN}' values")
        self._last = (pq_idx, rg_idx, texts)
        return texts


def _chunks(shards: _Shards, rank: int, world_size: int, start: tuple[int, int, int, int], size: int):
    """Yield (pq_idx, rg_idx, epoch, first_row, n_rows) forever, from start = (pq, rg, epoch, row).
    Row counts come from the footers: a chunk's texts are read only when it is not in the cache."""
    pq_idx, rg_idx, epoch, row = start
    while True:
        while pq_idx < len(shards):
            rg_rows = shards.rg_rows[pq_idx]
            while rg_idx < len(rg_rows):
                n_rows = rg_rows[rg_idx]
                for i in range(row, n_rows, size):
                    yield pq_idx, rg_idx, epoch, i, min(size, n_rows - i)
                rg_idx += world_size
                row = 0
            pq_idx += 1
            rg_idx, row = rank, 0
        epoch += 1
        pq_idx, rg_idx, row = 0, rank, 0


class _Visit:
    """The buffered rows of one chunk: a bit mask over its row group's rows."""

    __slots__ = ("pq_idx", "rg_idx", "mask")

    def __init__(self, pq_idx: int, rg_idx: int):
        self.pq_idx, self.rg_idx, self.mask = pq_idx, rg_idx, 0


class _DocBuffer:
    """Documents in a best-fit buffer, each tied to its source row (for the resume state)."""

    def __init__(self):
        self.fit = BestFitBuffer()  # items: (tokens, visit, row)
        self.visits: list[_Visit] = []  # in arrival order

    def __len__(self) -> int:
        return len(self.fit)

    def add(self, token_lists: list[list[int]], pq_idx: int, rg_idx: int, rows) -> None:
        visit = _Visit(pq_idx, rg_idx)
        self.visits.append(visit)
        for tokens, row in zip(token_lists, rows):
            self.fit.add(len(tokens), (tokens, visit, row))
            visit.mask |= 1 << row

    def pop_best_fit(self, remaining: int) -> tuple[list[int], bool]:
        """The longest doc of length <= remaining (earliest among equals), else the shortest one
        (earliest among equals). Returns (tokens, fits_whole)."""
        item = self.fit.pop_longest_fitting(remaining)
        whole = item is not None
        tokens, visit, row = item if whole else self.fit.pop_shortest()
        visit.mask &= ~(1 << row)
        return tokens, whole

    def state(self) -> list[list]:
        """Buffered rows in arrival order, as maximal runs of one row group with rising rows
        (a canonical form: an uninterrupted and a resumed run give the same state)."""
        self.visits = [v for v in self.visits if v.mask]
        out: list[list] = []
        for v in self.visits:
            low = (v.mask & -v.mask).bit_length() - 1
            if out and out[-1][:2] == [v.pq_idx, v.rg_idx] and out[-1][2].bit_length() - 1 < low:
                out[-1][2] |= v.mask
            else:
                out.append([v.pq_idx, v.rg_idx, v.mask])
        return [[p, r, format(m, "x")] for p, r, m in out]


def _mask_rows(hex_mask: str) -> list[int]:
    bits = bin(int(hex_mask, 16))[2:][::-1]
    return [i for i, c in enumerate(bits) if c == "1"]


def _check_state(state: dict, n_files: int) -> None:
    for key in _NANOCHAT_KEYS[:2]:
        if not isinstance(state.get(key), int) or state[key] < 0:
            raise ValueError(f"loader resume state needs a non-negative int {key!r}, got {state.get(key)!r}")
    if state["pq_idx"] >= n_files:
        raise ValueError(
            f"loader resume state pq_idx={state['pq_idx']} but the split has only {n_files} file(s): "
            "the shards changed since the checkpoint was written"
        )


def pretraining_loader(
    tokenizer,
    B: int,
    T: int,
    split: str,
    data_dir: Path | None = None,
    device: str | torch.device = "cpu",
    resume_state_dict: dict | None = None,
    rank: int = 0,
    world_size: int = 1,
    tokenizer_threads: int = 4,
    tokenizer_batch_size: int = 128,
    buffer_size: int = 1000,
    token_cache: TokenCache | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, dict]]:
    """Yield (inputs, targets, state_dict) forever; inputs/targets are (B, T) int64 on `device`.
    token_cache: where tokenized chunks are kept (None: the process-wide one; TokenCache(0): none)."""
    if B < 1 or T < 1 or buffer_size < 1 or tokenizer_batch_size < 1:
        raise ValueError(f"B, T, buffer_size and tokenizer_batch_size must be >= 1 (got {B}, {T}, "
                         f"{buffer_size}, {tokenizer_batch_size})")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} out of range for world_size {world_size}")
    shards = _Shards(split_files(split, data_dir))
    if not any(n for rows in shards.rg_rows for n in rows[rank::world_size]):
        raise ValueError(f"rank {rank} of {world_size} has no documents to read: the {split} shards "
                         f"({shards.files[0].parent}) have too few row groups for {world_size} ranks")
    # Validation above runs at call time; the generator below starts at the first next().
    source = _Tokens(tokenizer, shards, shared_cache() if token_cache is None else token_cache,
                     tokenizer_threads, tokenizer_batch_size)
    return _generate(source, B, T, torch.device(device), resume_state_dict, rank, world_size, buffer_size)


def evaluation_loader(tokenizer, B: int, T: int, split: str, data_dir: Path | None = None,
                      device: str | torch.device = "cpu", rank: int = 0, world_size: int = 1,
                      token_cache: TokenCache | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor, dict]]:
    """This rank's share of one process's batches (every world_size-th, from the rank-th): for
    evaluations whose ranks sum their results. Fresh from the start of the split each call (the
    token cache makes a repeated call cheap)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} out of range for world_size {world_size}")
    loader = pretraining_loader(tokenizer, B, T, split, data_dir, device, token_cache=token_cache)
    return itertools.islice(loader, rank, None, world_size)


class _Tokens:
    """Documents of a chunk as token sequences (BOS first): from the cache, else read and tokenized
    (and cached while the budget has room). Sequences are numpy views or int lists, equal in value."""

    def __init__(self, tokenizer, shards: _Shards, cache: TokenCache, threads: int, chunk_size: int):
        self.tokenizer, self.shards, self.cache = tokenizer, shards, cache
        self.threads, self.chunk_size = threads, chunk_size
        self.bos = tokenizer.get_bos_token_id()

    def _encode(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer.encode(texts, prepend=self.bos, num_threads=self.threads)

    def chunk(self, pq_idx: int, rg_idx: int, first: int, n: int):
        """The documents of rows first .. first+n-1 of one row group."""
        key = (self.shards.keys[pq_idx], rg_idx, first, n)
        cached = self.cache.get(self.tokenizer, key)
        if cached is not None:
            return cached.documents()
        token_lists = self._encode(self.shards.read(pq_idx, rg_idx)[first : first + n])
        stored = self.cache.put(self.tokenizer, key, token_lists)
        return token_lists if stored is None else stored.documents()

    def rows(self, pq_idx: int, rg_idx: int, rows: list[int]):
        """The documents of the given rows (ascending) of one row group, for a resume's buffer. Rows
        are looked up in the chunks the loader makes (aligned to chunk_size), which are tokenized
        whole while the cache has room, so the next epoch finds them."""
        size, n_rows = self.chunk_size, self.shards.rg_rows[pq_idx][rg_idx]
        out = []
        for first, group in itertools.groupby(rows, key=lambda r: r // size * size):
            group = list(group)
            n = min(size, n_rows - first)
            if (self.tokenizer, (self.shards.keys[pq_idx], rg_idx, first, n)) in self.cache or self.cache.has_room():
                docs = self.chunk(pq_idx, rg_idx, first, n)
                out += [docs[r - first] for r in group]
            else:
                texts = self.shards.read(pq_idx, rg_idx)
                out += self._encode([texts[r] for r in group])
        return out


def _generate(source: _Tokens, B, T, device, state, rank, world_size, buffer_size):
    shards, chunk_size = source.shards, source.chunk_size
    buf = _DocBuffer()
    start = (0, rank, 1, 0)
    if state is not None:
        _check_state(state, len(shards))
        epoch = int(state.get("epoch", 1))
        exact = "buffer" in state and "next_row" in state
        if exact and (state.get("rank", rank), state.get("world_size", world_size)) != (rank, world_size):
            warnings.warn(f"loader state is from rank {state.get('rank')} of {state.get('world_size')}, "
                          f"this is rank {rank} of {world_size}: resuming at the next row group instead")
            exact = False
        if exact:
            start = (state["pq_idx"], state["rg_idx"], epoch, int(state["next_row"]))
            for pq_idx, rg_idx, hex_mask in state["buffer"]:
                _restore(buf, source, pq_idx, rg_idx, _mask_rows(hex_mask))
        else:
            # nanochat's resume: the next row group of this rank after the saved one.
            start = (state["pq_idx"], (state["rg_idx"] // world_size + 1) * world_size + rank, epoch, 0)
    chunks = _chunks(shards, rank, world_size, start, chunk_size)
    pos_state = {"pq_idx": start[0], "rg_idx": start[1], "epoch": start[2], "next_row": start[3]}

    def refill():
        pq_idx, rg_idx, epoch, first, n = next(chunks)
        buf.add(source.chunk(pq_idx, rg_idx, first, n), pq_idx, rg_idx, range(first, first + n))
        pos_state.update(pq_idx=pq_idx, rg_idx=rg_idx, epoch=epoch, next_row=first + n)

    cap = T + 1
    rows = torch.empty((B, cap), dtype=torch.long)
    rows_np = rows.numpy()  # numpy slice assignment from lists is the fastest fill on CPU
    to_cuda = device.type == "cuda"
    if to_cuda:
        # Two pinned staging slots: the CPU fills one while the other's async copy may still run.
        staging = [torch.empty((2, B, T), dtype=torch.long, pin_memory=True) for _ in range(2)]
        copied = [None, None]
        slot = 0
    while True:
        for r in range(B):
            row = rows_np[r]
            pos = 0
            while pos < cap:
                while len(buf) < buffer_size:
                    refill()
                remaining = cap - pos
                tokens, whole = buf.pop_best_fit(remaining)
                if whole:
                    n = len(tokens)
                    row[pos : pos + n] = tokens
                    pos += n
                else:
                    row[pos:] = tokens[:remaining]
                    pos = cap
        state_dict = {**pos_state, "rank": rank, "world_size": world_size, "buffer": buf.state()}
        if to_cuda:
            if copied[slot] is not None:
                copied[slot].synchronize()
            pair = staging[slot]
            pair[0].copy_(rows[:, :-1])
            pair[1].copy_(rows[:, 1:])
            on_device = pair.to(device, non_blocking=True)
            copied[slot] = torch.cuda.Event()
            copied[slot].record()
            slot ^= 1
            yield on_device[0], on_device[1], state_dict
        else:
            inputs = rows[:, :-1].contiguous()
            targets = rows[:, 1:].contiguous()
            if device.type != "cpu":
                inputs, targets = inputs.to(device), targets.to(device)
            yield inputs, targets, state_dict


def _restore(buf: _DocBuffer, source: _Tokens, pq_idx, rg_idx, rows):
    """Refill one buffer entry of a resume state (documents are whole), in arrival order."""
    shards = source.shards
    if not (0 <= pq_idx < len(shards) and 0 <= rg_idx < len(shards.rg_rows[pq_idx])):
        raise ValueError(f"loader resume state names row group ({pq_idx}, {rg_idx}), absent from the shards")
    n_rows = shards.rg_rows[pq_idx][rg_idx]
    if rows and rows[-1] >= n_rows:
        raise ValueError(f"loader resume state names row {rows[-1]} of {shards.files[pq_idx]} row group "
                         f"{rg_idx}, which has {n_rows} rows: the shards changed")
    # One visit per chunk_size rows, as before the cache: the arrival order of the documents is the
    # same, so the packing is too.
    size = source.chunk_size
    for i in range(0, len(rows), size):
        part = rows[i : i + size]
        buf.add(source.rows(pq_idx, rg_idx, part), pq_idx, rg_idx, part)
