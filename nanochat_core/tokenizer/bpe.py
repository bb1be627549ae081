"""BPE tokenizer: trained with rustbpe, run with tiktoken (nanochat's design).

rustbpe learns the merges fast; tiktoken encodes fast. The trained tokenizer *is* a
tiktoken.Encoding (mergeable ranks + nine special tokens appended after the ranks), and
`tokenizer.pkl` is that Encoding pickled, exactly as nanochat writes it, so nanochat's
tokenizer files load into ours and ours into nanochat.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Iterable

import tiktoken

from nanochat_core.common import settings
from nanochat_core.common.atomic import atomic_path, save_torch_atomic

# nanochat's special tokens, in nanochat's order: ids are assigned in this order right after the
# mergeable ranks, so the order is part of the file format.
SPECIAL_TOKENS = [
    "<|bos|>",  # every document starts with it (also the document delimiter)
    "<|user_start|>",
    "<|user_end|>",
    "<|assistant_start|>",
    "<|assistant_end|>",
    "<|python_start|>",  # assistant calls the python tool
    "<|python_end|>",
    "<|output_start|>",  # python tool output fed back to the assistant
    "<|output_end|>",
]

# GPT-4's (cl100k) pre-tokenization pattern, except numbers split in groups of 1-2 digits
# (\p{N}{1,2} instead of {1,3}): nanochat's choice, which wastes fewer tokens on number chunks
# at small vocab sizes.
SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
)

TOKENIZER_FILE = "tokenizer.pkl"
TOKEN_BYTES_FILE = "token_bytes.pt"
MIN_VOCAB_SIZE = 256 + len(SPECIAL_TOKENS)  # 265: the 256 byte tokens + specials, no merges


class Tokenizer:
    """A thin wrapper over a tiktoken.Encoding with nanochat's API."""

    def __init__(self, enc: tiktoken.Encoding):
        self.enc = enc
        missing = [s for s in SPECIAL_TOKENS if s not in enc.special_tokens_set]
        if missing:
            raise ValueError(f"tokenizer {enc.name!r} lacks nanochat's special tokens {missing}")
        self.bos_token_id = enc.encode_single_token("<|bos|>")

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def train_from_iterator(cls, text_iterator: Iterable[str], vocab_size: int) -> "Tokenizer":
        """Train BPE merges with rustbpe; vocab_size counts the nine special tokens."""
        import rustbpe

        if vocab_size < MIN_VOCAB_SIZE:
            raise ValueError(
                f"--vocab-size {vocab_size} is too small: at least {MIN_VOCAB_SIZE} "
                f"(256 bytes + {len(SPECIAL_TOKENS)} special tokens)"
            )
        bpe = rustbpe.Tokenizer()
        bpe.train_from_iterator(iter(text_iterator), vocab_size - len(SPECIAL_TOKENS), pattern=SPLIT_PATTERN)
        return cls.from_mergeable_ranks(dict(bpe.get_mergeable_ranks()), bpe.get_pattern())

    @classmethod
    def from_mergeable_ranks(cls, ranks: dict[bytes, int], pattern: str = SPLIT_PATTERN) -> "Tokenizer":
        """Export ranks to tiktoken; specials take the ids right after the last rank."""
        n = len(ranks)
        special = {name: n + i for i, name in enumerate(SPECIAL_TOKENS)}
        return cls(tiktoken.Encoding(name="rustbpe", pat_str=pattern, mergeable_ranks=ranks, special_tokens=special))

    @classmethod
    def from_directory(cls, path: str | Path) -> "Tokenizer":
        """Load `<path>/tokenizer.pkl` (a pickled tiktoken.Encoding, nanochat's format)."""
        file = Path(path) / TOKENIZER_FILE
        if not file.is_file():
            raise FileNotFoundError(
                f"tokenizer file {file} not found: run `python -m nanochat_core.cli.tok_train` first"
            )
        # pickle is nanochat's format; only load tokenizer files you trust.
        with open(file, "rb") as f:
            enc = pickle.load(f)
        if not isinstance(enc, tiktoken.Encoding):
            raise ValueError(f"{file} holds a {type(enc).__name__}, expected a pickled tiktoken.Encoding")
        return cls(enc)

    def save(self, path: str | Path) -> Path:
        """Write `<path>/tokenizer.pkl` atomically (the Encoding pickled, as nanochat does)."""
        file = Path(path) / TOKENIZER_FILE
        with atomic_path(file) as tmp, open(tmp, "wb") as f:
            pickle.dump(self.enc, f)
        return file

    # ---- vocabulary ---------------------------------------------------------------------
    def get_vocab_size(self) -> int:
        return self.enc.n_vocab

    def get_bos_token_id(self) -> int:
        return self.bos_token_id

    def get_special_tokens(self) -> set[str]:
        return self.enc.special_tokens_set

    def encode_special(self, s: str) -> int:
        return self.enc.encode_single_token(s)

    def id_to_token(self, i: int) -> str:
        return self.enc.decode([i])

    def token_raw_bytes(self, i: int) -> bytes:
        return self.enc.decode_single_token_bytes(i)

    # ---- encode / decode ----------------------------------------------------------------
    def _as_id(self, tok: int | str) -> int:
        return tok if isinstance(tok, int) else self.encode_special(tok)

    def encode(self, text, prepend: int | str | None = None, append: int | str | None = None, num_threads: int = 8):
        """str -> list[int]; list[str] -> list[list[int]]. Special strings in text stay ordinary text."""
        pre = [] if prepend is None else [self._as_id(prepend)]
        post = [] if append is None else [self._as_id(append)]
        if isinstance(text, str):
            return pre + self.enc.encode_ordinary(text) + post
        if isinstance(text, list):
            rows = self.enc.encode_ordinary_batch(text, num_threads=num_threads)
            return [pre + row + post for row in rows] if (pre or post) else rows
        raise TypeError(f"encode expects str or list[str], got {type(text).__name__}")

    __call__ = encode

    def decode(self, ids: list[int]) -> str:
        return self.enc.decode(ids)

    # ---- chat ---------------------------------------------------------------------------
    def render_conversation(self, conversation: dict, max_tokens: int = 2048) -> tuple[list[int], list[int]]:
        from nanochat_core.tokenizer.chat_render import render_conversation

        return render_conversation(self, conversation, max_tokens)

    def render_for_completion(self, conversation: dict) -> list[int]:
        from nanochat_core.tokenizer.chat_render import render_for_completion

        return render_for_completion(self, conversation)


def get_tokenizer(root: Path | None = None) -> Tokenizer:
    return Tokenizer.from_directory(settings.tokenizer_dir(root))


def compute_token_bytes(tokenizer: Tokenizer):
    """Byte length of each token's raw bytes, 0 for specials (for bits-per-byte).

    Uses the raw bytes, not decode-to-str-and-re-encode (nanochat's March code did that and corrupted the 193 tokens of its 32,768 that end inside a UTF-8 character): a token
    that is a partial UTF-8 sequence decodes to U+FFFD (3 bytes) and would be miscounted.
    """
    import torch

    enc = tokenizer.enc
    special_ids = {enc.encode_single_token(s) for s in enc.special_tokens_set}
    lengths = [0 if i in special_ids else len(enc.decode_single_token_bytes(i)) for i in range(enc.n_vocab)]
    return torch.tensor(lengths, dtype=torch.int32)


def save_token_bytes(tokenizer: Tokenizer, path: str | Path, token_bytes=None):
    """Write `<path>/token_bytes.pt` atomically (computed unless given); returns the tensor."""
    if token_bytes is None:
        token_bytes = compute_token_bytes(tokenizer)
    save_torch_atomic(token_bytes, Path(path) / TOKEN_BYTES_FILE)
    return token_bytes


def get_token_bytes(root: Path | None = None, device="cpu"):
    import torch

    file = settings.tokenizer_dir(root) / TOKEN_BYTES_FILE
    if not file.is_file():
        raise FileNotFoundError(f"token bytes file {file} not found: run `python -m nanochat_core.cli.tok_train` first")
    return torch.load(file, map_location=device, weights_only=True)

