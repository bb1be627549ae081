"""Pretraining loader: best-fit packing (against a plain reference), striding, epochs, resume, bad input."""
from __future__ import annotations

import json
import random
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from nanochat_core.data.loader import pretraining_loader
from nanochat_core.tokenizer.bpe import Tokenizer
from helpers import write_shards
from train_fixtures import take


@pytest.fixture(scope="module")
def tok():
    # vocab 265 = bytes + specials, no merges: one token per byte, so lengths are easy to craft.
    return Tokenizer.train_from_iterator(["byte level"], vocab_size=265)


def doc_text(rng: random.Random, ident: str) -> str:
    # Ids lead the text so whole documents can be traced back to their row; lengths vary from
    # a few tokens to several rows (exercises cropping).
    n = rng.choice([0, 1, 3, 8, 15, 30, 60, 120])
    return f"<{ident}>" + "".join(rng.choice("abcdefgh ") for _ in range(n))


def write_traced_shards(root, rows_per_file=(23, 17, 11), row_group_size=5, seed=0):
    """Shards whose documents name their file, row group and row (see doc_text)."""
    rng = random.Random(seed)
    write_shards(root, [[doc_text(rng, f"{f}.{i // row_group_size}.{i % row_group_size}") for i in range(n)]
                        for f, n in enumerate(rows_per_file)], row_group_size)
    return root


def reference_batches(tok, files, B, T, n, rank=0, world_size=1, chunk=128, buffer_size=1000, start=None):
    """nanochat's packing, written the plain way: O(n) scans over a list buffer."""

    def chunks():
        pq0, rg0 = start or (0, rank)
        first = True
        while True:
            for p in range(pq0 if first else 0, len(files)):
                pf = pq.ParquetFile(files[p])
                rg = rg0 if first and p == pq0 else rank
                while rg < pf.num_row_groups:
                    texts = pf.read_row_group(rg).column("text").to_pylist()
                    for i in range(0, len(texts), chunk):
                        yield texts[i : i + chunk]
                    rg += world_size
            first = False

    stream, bos, buffer, out = chunks(), tok.get_bos_token_id(), [], []
    for _ in range(n):
        rows = []
        for _ in range(B):
            row = []
            while len(row) < T + 1:
                while len(buffer) < buffer_size:
                    buffer.extend(tok.encode(next(stream), prepend=bos))
                remaining = T + 1 - len(row)
                best, best_len = -1, 0
                for i, d in enumerate(buffer):
                    if best_len < len(d) <= remaining:
                        best, best_len = i, len(d)
                if best >= 0:
                    row.extend(buffer.pop(best))
                else:
                    shortest = min(range(len(buffer)), key=lambda i: len(buffer[i]))
                    row.extend(buffer.pop(shortest)[:remaining])
            rows.append(row)
        t = torch.tensor(rows)
        out.append((t[:, :-1], t[:, 1:]))
    return out


@pytest.mark.parametrize(
    "B,T,chunk,buffer_size,world_size,rank",
    [(2, 32, 4, 6, 1, 0), (3, 17, 128, 1000, 1, 0), (2, 40, 3, 9, 2, 1), (1, 64, 2, 20, 3, 2), (4, 8, 5, 1, 1, 0)],
)
def test_matches_plain_reference(tmp_path, tok, B, T, chunk, buffer_size, world_size, rank):
    data = write_traced_shards(tmp_path / "d")
    files = sorted(data.glob("*.parquet"))[:-1]
    got = take(pretraining_loader(tok, B, T, "train", data_dir=data, rank=rank, world_size=world_size,
                                  tokenizer_threads=1, tokenizer_batch_size=chunk, buffer_size=buffer_size), 25)
    want = reference_batches(tok, files, B, T, 25, rank, world_size, chunk, buffer_size)
    for (x, y, _), (wx, wy) in zip(got, want):
        assert torch.equal(x, wx) and torch.equal(y, wy)


def test_packing_invariants(tmp_path, tok):
    data = write_traced_shards(tmp_path / "d")
    texts = {t for f in sorted(data.glob("*.parquet"))[:-1] for t in pq.read_table(f).column("text").to_pylist()}
    whole = {tuple(tok.encode(t, prepend="<|bos|>")) for t in texts}
    bos, B, T = tok.get_bos_token_id(), 3, 30
    for x, y, _ in take(pretraining_loader(tok, B, T, "train", data_dir=data, tokenizer_batch_size=4, buffer_size=8), 30):
        assert x.shape == y.shape == (B, T) and x.dtype == y.dtype == torch.long
        assert torch.equal(x[:, 1:], y[:, :-1])  # one row of T+1 tokens each
        rows = torch.cat([x, y[:, -1:]], dim=1).tolist()
        for row in rows:
            assert row[0] == bos
            starts = [i for i, t in enumerate(row) if t == bos] + [len(row)]
            segments = [tuple(row[a:b]) for a, b in zip(starts, starts[1:])]
            # Every position is a real token: all segments but the last are whole documents,
            # the last is a whole document or the start of one (cropped to fill the row).
            assert all(s in whole for s in segments[:-1])
            assert any(d[: len(segments[-1])] == segments[-1] for d in whole)


def test_best_fit_on_crafted_buffer(tmp_path, tok):
    # One row group of five docs (lengths with BOS: 5, 8, 3, 3, 6); rows of T+1 = 10 tokens.
    data = tmp_path / "d"
    data.mkdir()
    for name in ("shard_00000.parquet", "shard_00001.parquet"):
        pq.write_table(pa.table({"text": ["aaaa", "bbbbbbb", "xy", "zw", "ddddd"]}), data / name)
    got = take(pretraining_loader(tok, 3, 9, "train", data_dir=data, tokenizer_batch_size=5, buffer_size=5), 1)
    x, y, _ = got[0]
    rows = [tok.decode(r).replace("<|bos|>", "|") for r in torch.cat([x, y[:, -1:]], 1).tolist()]
    assert rows == [
        "|bbbbbbb|x",  # longest that fits (8); then nothing fits 2: shortest ("xy" before "zw") cropped
        "|bbbbbbb|z",  # the 2nd epoch's copy arrived meanwhile (buffer topped up to 5)
        "|ddddd|xy|",  # first "ddddd" of two equals; then "xy" (3 <= 4); then the earliest 3 cropped to 1
    ]
    files = sorted(data.glob("*.parquet"))[:-1]
    wx, _ = reference_batches(tok, files, 3, 9, 1, chunk=5, buffer_size=5)[0]
    assert torch.equal(x, wx)


def whole_doc_ids(x, y, tok):
    """Ids "<file.rg.row>" of the documents seen in a batch (cropped ones may show a prefix)."""
    text = "".join(tok.decode(r) for r in torch.cat([x, y[:, -1:]], 1).tolist())
    return set(re.findall(r"<\|bos\|><(\d+)\.(\d+)\.(\d+)>", text))


def test_rank_striding_reads_disjoint_row_groups(tmp_path, tok):
    data = write_traced_shards(tmp_path / "d")
    seen = {}
    for rank in (0, 1):
        it = pretraining_loader(tok, 2, 24, "train", data_dir=data, rank=rank, world_size=2,
                                tokenizer_batch_size=4, buffer_size=6)
        seen[rank] = set()
        for x, y, state in take(it, 15):
            assert state["rg_idx"] % 2 == rank and (state["rank"], state["world_size"]) == (rank, 2)
            assert all(rg % 2 == rank for _, rg, _ in state["buffer"])
            seen[rank] |= {(f, g) for f, g, _ in whole_doc_ids(x, y, tok)}
        assert seen[rank] and all(int(g) % 2 == rank for _, g in seen[rank])
    assert not seen[0] & seen[1]


def test_epoch_increments_on_wrap_around(tmp_path, tok):
    data = write_traced_shards(tmp_path / "d", rows_per_file=(6, 4, 3), row_group_size=2)
    states = [s for _, _, s in take(pretraining_loader(tok, 2, 16, "train", data_dir=data,
                                                       tokenizer_batch_size=2, buffer_size=3), 30)]
    epochs = [s["epoch"] for s in states]
    assert epochs[0] == 1 and epochs == sorted(epochs) and epochs[-1] >= 3
    first_of_2 = next(s for s in states if s["epoch"] == 2)
    assert first_of_2["pq_idx"] == 0  # a new epoch starts again at the first file
    val = take(pretraining_loader(tok, 2, 16, "val", data_dir=data, tokenizer_batch_size=2, buffer_size=3), 10)
    assert all(s["pq_idx"] == 0 for _, _, s in val) and val[-1][2]["epoch"] > 1  # val = last file only


@pytest.mark.parametrize("buffer_size,chunk,world_size,rank", [(6, 4, 1, 0), (1000, 128, 1, 0), (9, 3, 2, 1)])
def test_exact_resume(tmp_path, tok, buffer_size, chunk, world_size, rank):
    data = write_traced_shards(tmp_path / "d")
    kw = dict(data_dir=data, rank=rank, world_size=world_size, tokenizer_batch_size=chunk, buffer_size=buffer_size)
    full = take(pretraining_loader(tok, 2, 20, "train", **kw), 40)
    for k in (0, 1, 6, 17, 31):
        resumed = take(pretraining_loader(tok, 2, 20, "train", resume_state_dict=full[k][2], **kw), 40 - k - 1)
        for (x, y, s), (rx, ry, rs) in zip(full[k + 1 :], resumed):
            assert torch.equal(x, rx) and torch.equal(y, ry)
            assert s == rs  # the canonical state is the same too
    if buffer_size < 10:  # compact: a few row-group entries with hex row masks
        assert len(json.dumps(full[-1][2])) < 400


def test_nanochat_three_key_resume(tmp_path, tok):
    data = write_traced_shards(tmp_path / "d")
    files = sorted(data.glob("*.parquet"))[:-1]
    kw = dict(tokenizer_batch_size=4, buffer_size=6)
    cases = [  # (state, world_size, rank, where the reference should start: (pq_idx, rg_idx))
        ({"pq_idx": 0, "rg_idx": 1, "epoch": 1}, 1, 0, (0, 2)),
        ({"pq_idx": 0, "rg_idx": 2, "epoch": 1}, 2, 1, (0, 5)),  # rank 0's state, resumed by rank 1
        ({"pq_idx": 0, "rg_idx": 4, "epoch": 2}, 1, 0, (1, 0)),  # past the file's last row group
    ]
    for state, W, rank, start in cases:
        it = pretraining_loader(tok, 2, 20, "train", data_dir=data, resume_state_dict=state, rank=rank, world_size=W, **kw)
        got = take(it, 5)
        want = reference_batches(tok, files, 2, 20, 5, rank, W, 4, 6, start=start)
        assert all(torch.equal(x, wx) for (x, _, _), (wx, _) in zip(got, want))
        assert got[0][2]["epoch"] in (state["epoch"], state["epoch"] + 1)  # counts on from the saved epoch


def test_state_from_another_rank_falls_back_to_next_row_group(tmp_path, tok):
    data = write_traced_shards(tmp_path / "d")
    kw = dict(data_dir=data, world_size=2, buffer_size=6)
    state = take(pretraining_loader(tok, 2, 20, "train", rank=0, **kw), 1)[0][2]
    with pytest.warns(UserWarning, match="rank 0 of 2"):
        x, _, s = next(pretraining_loader(tok, 2, 20, "train", rank=1, resume_state_dict=state, **kw))
    assert s["rg_idx"] % 2 == 1


def test_bad_input_errors_name_the_file(tmp_path, tok):
    def loader(d, **kw):
        return next(pretraining_loader(tok, 1, 8, "train", data_dir=d, **kw))

    good = write_traced_shards(tmp_path / "good")
    (good / "shard_00000.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ValueError, match=r"shard_00000\.parquet.*not a readable parquet"):
        loader(good)

    nocol = tmp_path / "nocol"
    nocol.mkdir()
    for i in range(2):
        pq.write_table(pa.table({"content": ["x"]}), nocol / f"shard_{i:05d}.parquet")
    with pytest.raises(ValueError, match=r"shard_00000\.parquet: no 'text' column"):
        loader(nocol)

    empty = write_traced_shards(tmp_path / "empty")
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), empty / "shard_00001.parquet")
    with pytest.raises(ValueError, match=r"shard_00001\.parquet: empty shard"):
        loader(empty)

    with pytest.raises(FileNotFoundError, match="repackage_data"):
        loader(tmp_path / "missing")
    one = tmp_path / "one"
    write_traced_shards(one, rows_per_file=(5,))
    with pytest.raises(ValueError, match="at least 2"):
        loader(one)

    data = write_traced_shards(tmp_path / "d", rows_per_file=(4, 3), row_group_size=2)  # train: 2 row groups
    with pytest.raises(ValueError, match="rank 2 of 3 has no documents"):
        loader(data, rank=2, world_size=3)
    with pytest.raises(ValueError, match="pq_idx=5"):
        loader(data, resume_state_dict={"pq_idx": 5, "rg_idx": 0, "epoch": 1})
    with pytest.raises(ValueError, match="row 9 of .*shard_00000.parquet"):
        loader(data, resume_state_dict={"pq_idx": 0, "rg_idx": 0, "epoch": 1, "next_row": 2, "rank": 0,
                                        "world_size": 1, "buffer": [[0, 0, format(1 << 9, "x")]]})
    with pytest.raises(ValueError, match="split must be"):
        next(pretraining_loader(tok, 1, 8, "test", data_dir=data))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batches_equal_cpu_batches(tmp_path, tok):
    data = write_traced_shards(tmp_path / "d")
    kw = dict(data_dir=data, tokenizer_batch_size=4, buffer_size=6)
    cpu = take(pretraining_loader(tok, 2, 20, "train", **kw), 10)
    gpu = take(pretraining_loader(tok, 2, 20, "train", device="cuda", **kw), 10)  # pinned double-buffering
    for (x, y, s), (gx, gy, gs) in zip(cpu, gpu):
        assert gx.is_cuda and torch.equal(x, gx.cpu()) and torch.equal(y, gy.cpu()) and s == gs
