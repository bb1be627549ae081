"""Token cache under the pretraining loader: every batch and state equal with and without it, over
several epochs and across resumes; later epochs tokenize nothing; the budget bounds what it holds."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from nanochat_core.data.loader import evaluation_loader, pretraining_loader
from nanochat_core.data.token_cache import TokenCache
from nanochat_core.tokenizer.bpe import Tokenizer
from helpers import generated_documents, write_shards
from train_fixtures import take

WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "then", "ran", "far", "away", "from", "home", "again"]


def docs(n: int, seed: int) -> list[str]:
    """Documents from a few tokens to several rows long (exercises whole placements and crops)."""
    rng = random.Random(seed)
    return [f"{seed}.{i} " + " ".join(rng.choice(WORDS) for _ in range(rng.choice([1, 4, 10, 25, 60])))
            for i in range(n)]


@pytest.fixture(scope="module")
def tok():
    # A real BPE with merges (not byte-level), trained on the same kind of text it encodes.
    return Tokenizer.train_from_iterator(docs(200, 99) + generated_documents(50), vocab_size=400)


@pytest.fixture
def data(tmp_path):
    # Train: 2 files (23 + 17 docs, row groups of 5); val: the last file (11 docs).
    write_shards(tmp_path / "d", [docs(23, 0), docs(17, 1), docs(11, 2)], row_group_size=5)
    return tmp_path / "d"


CHUNK = 2  # rows per tokenized chunk: several chunks of equal size in a row group (keys must tell them apart)
KW = dict(tokenizer_threads=1, tokenizer_batch_size=CHUNK, buffer_size=7)


def assert_same(got, want):
    assert len(got) == len(want)
    for (x, y, s), (wx, wy, ws) in zip(got, want):
        assert torch.equal(x, wx) and torch.equal(y, wy)
        assert s == ws


@pytest.mark.parametrize("world_size,rank", [(1, 0), (2, 1)])
def test_batches_and_states_equal_with_and_without_cache_over_epochs(data, tok, world_size, rank):
    kw = dict(data_dir=data, rank=rank, world_size=world_size, **KW)
    without = take(pretraining_loader(tok, 2, 16, "train", token_cache=TokenCache(0), **kw), 60)
    cache = TokenCache()
    with_cache = take(pretraining_loader(tok, 2, 16, "train", token_cache=cache, **kw), 60)
    assert with_cache[-1][2]["epoch"] >= 4  # several passes over the corpus
    assert_same(with_cache, without)
    # Epoch 1 tokenized each of this rank's chunks once (a miss each); every later chunk was a hit.
    n_chunks = len(cache)
    rg_sizes = [[5, 5, 5, 5, 3], [5, 5, 5, 2]]  # 23 and 17 docs in row groups of 5
    mine = [n for sizes in rg_sizes for n in sizes[rank::world_size]]
    assert n_chunks == cache.misses == sum(-(-n // CHUNK) for n in mine)
    assert cache.hits > 2 * n_chunks
    # A second loader with the same tokenizer and shards tokenizes nothing.
    misses = cache.misses
    again = take(pretraining_loader(tok, 2, 16, "train", token_cache=cache, **kw), 60)
    assert_same(again, without)
    assert cache.misses == misses


def test_cache_holds_exactly_the_tokenizer_output_compactly(data, tok):
    import pyarrow.parquet as pq

    cache = TokenCache()
    take(pretraining_loader(tok, 2, 16, "train", data_dir=data, token_cache=cache, **KW), 30)
    texts = [t for f in sorted(data.glob("*.parquet"))[:-1] for t in pq.read_table(f).column("text").to_pylist()]
    bos = tok.get_bos_token_id()
    assert cache.tokens == sum(len(tok.encode(t)) + 1 for t in texts)  # every train doc once, BOS included
    (entries,) = cache._by_tokenizer.values()
    for (file_key, rg, first, n), chunk in entries.items():
        assert chunk.tokens.dtype == np.uint16  # vocab 400 < 65,536: 2 bytes a token
        group = pq.ParquetFile(file_key[0]).read_row_group(rg).column("text").to_pylist()
        want = [[bos] + tok.encode(t) for t in group[first : first + n]]
        assert [d.tolist() for d in chunk.documents()] == want
    n_docs = len(texts)
    assert cache.nbytes == 2 * cache.tokens + 8 * (n_docs + len(cache))  # tokens + offsets, nothing else


@pytest.mark.parametrize("warm", [False, True])
def test_mid_epoch_resume_equal_with_and_without_cache(data, tok, warm):
    kw = dict(data_dir=data, **KW)
    full = take(pretraining_loader(tok, 2, 16, "train", token_cache=TokenCache(0), **kw), 45)
    cache = TokenCache()
    if warm:  # the cache already holds the corpus (a resume inside a process that has read it)
        take(pretraining_loader(tok, 2, 16, "train", token_cache=cache, **kw), 45)
    for k in (0, 3, 11, 26):  # mid-epoch states with non-empty buffers, in epochs 1 to 3
        state = full[k][2]
        assert state["buffer"] and state["next_row"] > 0
        resumed = take(pretraining_loader(tok, 2, 16, "train", resume_state_dict=state, token_cache=cache, **kw),
                       45 - k - 1)
        assert_same(resumed, full[k + 1 :])
        cold = take(pretraining_loader(tok, 2, 16, "train", resume_state_dict=state, token_cache=TokenCache(0), **kw),
                    5)
        assert_same(cold, full[k + 1 : k + 6])
    assert cache.hits > 0


def test_resume_fills_the_cache_with_the_chunks_the_next_epoch_reads(data, tok):
    kw = dict(data_dir=data, **KW)
    state = take(pretraining_loader(tok, 2, 16, "train", token_cache=TokenCache(0), **kw), 4)[-1][2]
    cache = TokenCache()
    it = pretraining_loader(tok, 2, 16, "train", resume_state_dict=state, token_cache=cache, **kw)
    next(it)
    restored = len(cache)
    assert restored > 0  # the buffer's chunks were tokenized whole and kept
    assert cache.misses == restored
    states = [s for _, _, s in take(it, 40)]  # into the next epochs
    assert states[-1]["epoch"] >= 3
    # Every chunk of the corpus is cached once (24 chunks of <= 2 rows) and none was tokenized twice:
    # the restored chunks were hits when the next epoch reached them.
    assert len(cache) == cache.misses == 24


@pytest.mark.parametrize("budget", [1, 40, 150])
def test_budget_bounds_the_cache_and_batches_stay_equal(data, tok, budget):
    kw = dict(data_dir=data, **KW)
    without = take(pretraining_loader(tok, 2, 16, "train", token_cache=TokenCache(0), **kw), 40)
    cache = TokenCache(budget)
    got = take(pretraining_loader(tok, 2, 16, "train", token_cache=cache, **kw), 40)
    assert_same(got, without)
    assert cache.tokens <= budget
    if budget >= 150:  # room for a few chunks, not the corpus: those are hits in later epochs
        assert 0 < len(cache) and cache.hits > 0
    state = without[13][2]  # a resume under a full cache tokenizes the buffered rows only, still equal
    resumed = take(pretraining_loader(tok, 2, 16, "train", resume_state_dict=state, token_cache=cache, **kw), 10)
    assert_same(resumed, without[14:24])
    assert cache.tokens <= budget


def test_zero_budget_caches_nothing(data, tok):
    cache = TokenCache(0)
    take(pretraining_loader(tok, 2, 16, "train", data_dir=data, token_cache=cache, **KW), 20)
    assert len(cache) == cache.tokens == cache.hits == 0
    with pytest.raises(ValueError, match=">= 0"):
        TokenCache(-1)


def test_repeated_evaluation_is_served_from_the_cache(data, tok):
    cache = TokenCache()
    first = take(evaluation_loader(tok, 2, 16, "val", data_dir=data, token_cache=cache), 6)
    misses = cache.misses
    second = take(evaluation_loader(tok, 2, 16, "val", data_dir=data, token_cache=cache), 6)
    plain = take(evaluation_loader(tok, 2, 16, "val", data_dir=data, token_cache=TokenCache(0)), 6)
    assert_same(first, plain)
    assert_same(second, plain)
    assert cache.misses == misses and cache.hits > 0  # the second call tokenized nothing


def test_rewritten_shard_is_not_served_stale(tmp_path, tok):
    data = tmp_path / "d"
    write_shards(data, [docs(12, 0), docs(5, 2)], row_group_size=4)
    cache = TokenCache()
    take(pretraining_loader(tok, 2, 16, "train", data_dir=data, token_cache=cache, **KW), 5)
    write_shards(data, [docs(12, 7), docs(5, 2)], row_group_size=4)  # same path, other documents
    got = take(pretraining_loader(tok, 2, 16, "train", data_dir=data, token_cache=cache, **KW), 5)
    want = take(pretraining_loader(tok, 2, 16, "train", data_dir=data, token_cache=TokenCache(0), **KW), 5)
    assert_same(got, want)


def test_another_tokenizer_does_not_share_entries(data, tok):
    other = Tokenizer.train_from_iterator(docs(200, 98), vocab_size=300)
    cache = TokenCache()
    take(pretraining_loader(tok, 2, 16, "train", data_dir=data, token_cache=cache, **KW), 5)
    got = take(pretraining_loader(other, 2, 16, "train", data_dir=data, token_cache=cache, **KW), 5)
    want = take(pretraining_loader(other, 2, 16, "train", data_dir=data, token_cache=TokenCache(0), **KW), 5)
    assert_same(got, want)
    assert len(cache._by_tokenizer) == 2
    del other, got  # a tokenizer's entries go with it (the views in the batches are copies)
    import gc

    gc.collect()
    assert len(cache._by_tokenizer) == 1


def test_process_wide_budget_comes_from_the_environment(monkeypatch):
    from nanochat_core.data import token_cache

    for value, budget in (("0", 0), ("2.5e6", 2_500_000), ("", 100_000_000)):  # empty: the default
        monkeypatch.setattr(token_cache, "_shared", None)  # as in a fresh process
        monkeypatch.setenv("NANOCHAT_TOKEN_CACHE_TOKENS", value)
        cache = token_cache.shared_cache()
        assert cache.budget_tokens == budget and token_cache.shared_cache() is cache
    monkeypatch.setattr(token_cache, "_shared", None)
    monkeypatch.setenv("NANOCHAT_TOKEN_CACHE_TOKENS", "lots")
    with pytest.raises(ValueError, match="NANOCHAT_TOKEN_CACHE_TOKENS='lots'"):
        token_cache.shared_cache()
