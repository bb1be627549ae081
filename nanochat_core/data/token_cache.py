"""Tokenized chunks kept in memory, so a later epoch (or a repeated validation) skips the tokenizer.

A small corpus trained for many epochs (the demo's tiny cells run ~50 epochs of 1.5 MB) spent a third
of its loop re-reading and re-tokenizing the same row groups. The pretraining loader asks this cache
for a chunk of documents before it tokenizes them; a chunk is identified by its shard file (path,
size, modification time), row group, first row and row count, under one tokenizer object (the cache
holds entries per tokenizer and drops them with it).

Each entry is one flat array of the chunk's tokens (uint16 when the vocabulary fits, else int32)
and the document offsets into it: about 2 bytes a token plus 8 a document, instead of ~36 bytes a
token as Python int lists. The cache only grows, up to `budget_tokens` tokens in all; once full it
stops adding. A corpus bigger than the budget is read once per epoch and would gain little from
eviction churn, while a small one fits whole and is tokenized once per process.

The process-wide cache (`shared_cache()`) takes its budget from NANOCHAT_TOKEN_CACHE_TOKENS
(default 100M tokens: at most ~200 MB with a vocabulary under 65,536; 0 turns caching off).
"""
from __future__ import annotations

import itertools
import os
import weakref

import numpy as np

DEFAULT_BUDGET_TOKENS = 100_000_000
BUDGET_ENV = "NANOCHAT_TOKEN_CACHE_TOKENS"


class _Chunk:
    """One chunk's documents: tokens[offsets[i]:offsets[i+1]] is document i (BOS included)."""

    __slots__ = ("tokens", "offsets")

    def __init__(self, tokens: np.ndarray, offsets: np.ndarray):
        self.tokens, self.offsets = tokens, offsets

    def documents(self, rows=None) -> list[np.ndarray]:
        """Views of the documents (all, or those at the given positions within the chunk)."""
        t, o = self.tokens, self.offsets.tolist()
        if rows is None:
            return [t[a:b] for a, b in zip(o, o[1:])]
        return [t[o[i] : o[i + 1]] for i in rows]


class _TokenizerEntries(dict):
    """key -> _Chunk for one tokenizer; `tokens` counts what it holds (for the shared budget)."""

    tokens = 0
    nbytes = 0


class TokenCache:
    """Tokenized chunks per tokenizer, bounded by a total token budget (see the module docstring)."""

    def __init__(self, budget_tokens: int = DEFAULT_BUDGET_TOKENS):
        if budget_tokens < 0:
            raise ValueError(f"token cache budget must be >= 0 tokens, got {budget_tokens}")
        self.budget_tokens = budget_tokens
        # Weak keys: a tokenizer's entries go when it does (tests build many tokenizers in one process).
        self._by_tokenizer: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.hits = 0
        self.misses = 0

    @property
    def tokens(self) -> int:
        """Tokens held, all tokenizers together."""
        return sum(e.tokens for e in list(self._by_tokenizer.values()))

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays held (tokens and offsets), all tokenizers together."""
        return sum(e.nbytes for e in list(self._by_tokenizer.values()))

    def __len__(self) -> int:
        return sum(len(e) for e in list(self._by_tokenizer.values()))

    def clear(self) -> None:
        self._by_tokenizer.clear()

    def _entries(self, tokenizer) -> _TokenizerEntries | None:
        try:
            return self._by_tokenizer.get(tokenizer)
        except TypeError:  # not weak-referenceable: never cached
            return None

    def get(self, tokenizer, key) -> _Chunk | None:
        entries = self._entries(tokenizer)
        chunk = None if entries is None else entries.get(key)
        if chunk is None:
            self.misses += 1
        else:
            self.hits += 1
        return chunk

    def __contains__(self, tokenizer_and_key) -> bool:
        """(tokenizer, key) in cache: a look without counting a hit or a miss."""
        tokenizer, key = tokenizer_and_key
        entries = self._entries(tokenizer)
        return entries is not None and key in entries

    def has_room(self, n_tokens: int = 1) -> bool:
        return self.budget_tokens > 0 and self.tokens + n_tokens <= self.budget_tokens

    def put(self, tokenizer, key, token_lists: list[list[int]]) -> _Chunk | None:
        """Store a chunk's token lists if the budget has room for them; the stored chunk, or None."""
        n = sum(map(len, token_lists))
        if not self.has_room(n):
            return None
        entries = self._entries(tokenizer)
        if entries is None:
            try:
                entries = self._by_tokenizer.setdefault(tokenizer, _TokenizerEntries())
            except TypeError:
                return None
        dtype = np.uint16 if tokenizer.get_vocab_size() <= 1 << 16 else np.int32
        tokens = np.fromiter(itertools.chain.from_iterable(token_lists), dtype=dtype, count=n)
        offsets = np.zeros(len(token_lists) + 1, dtype=np.int64)
        np.cumsum([len(t) for t in token_lists], out=offsets[1:])
        chunk = _Chunk(tokens, offsets)
        old = entries.get(key)
        if old is not None:  # the same chunk stored twice (never by the loader): count it once
            entries.tokens -= len(old.tokens)
            entries.nbytes -= old.tokens.nbytes + old.offsets.nbytes
        entries[key] = chunk
        entries.tokens += n
        entries.nbytes += tokens.nbytes + offsets.nbytes
        return chunk


_shared: TokenCache | None = None


def shared_cache() -> TokenCache:
    """The process-wide cache every loader uses unless given its own (budget from NANOCHAT_TOKEN_CACHE_TOKENS)."""
    global _shared
    if _shared is None:
        raw = os.environ.get(BUDGET_ENV, "").strip()
        try:
            budget = int(float(raw)) if raw else DEFAULT_BUDGET_TOKENS
        except ValueError:
            raise ValueError(f"{BUDGET_ENV}={raw!r}: expected a number of tokens (0 turns the cache off)") from None
        _shared = TokenCache(budget)
    return _shared
