"""Train the BPE tokenizer on the train shards: `python -m nanochat_core.cli.tok_train`.

Flags and defaults are nanochat's (scripts/tok_train.py). Writes $NANOCHAT_BASE_DIR/tokenizer/
tokenizer.pkl and token_bytes.pt, each under a temporary name then renamed.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator

from nanochat_core.common import settings
from nanochat_core.cli.arg_types import positive_int


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train a BPE tokenizer (rustbpe -> tiktoken) on the train shards.")
    p.add_argument("--max-chars", type=positive_int, default=2_000_000_000, help="train on at most this many characters (default 2e9)")
    p.add_argument("--doc-cap", type=positive_int, default=10_000, help="crop each document to this many characters (default 10000)")
    p.add_argument("--vocab-size", type=positive_int, default=32768, help="vocabulary size including the 9 special tokens (default 32768)")
    p.add_argument("--data-dir", type=Path, default=None, help="shard folder (default $NANOCHAT_BASE_DIR/base_data)")
    return p


class _Counter:
    """Counts the documents and characters rustbpe actually consumed, for the stats line."""

    def __init__(self, texts: Iterable[str]):
        self.texts, self.docs, self.chars = texts, 0, 0

    def __iter__(self) -> Iterator[str]:
        for text in self.texts:
            self.docs += 1
            self.chars += len(text)
            yield text


def check_shards(files: list[Path]) -> None:
    """Open every shard's footer before training (cheap) so a corrupted file or a missing `text`
    column is reported by name up front, not as an anonymous pyarrow error mid-training."""
    import pyarrow.parquet as pq

    for path in files:
        try:
            names = pq.ParquetFile(path).schema_arrow.names
        except Exception as e:
            raise ValueError(f"cannot read parquet shard {path}: {e}") from e
        if "text" not in names:
            raise ValueError(f"parquet shard {path} has no 'text' column (columns: {names})")


def train(max_chars: int, doc_cap: int, vocab_size: int, data_dir: Path | None = None, out_dir: Path | None = None) -> dict:
    """Train, save both files, return stats (also what the pipeline records)."""
    from nanochat_core.data.parquet_files import iter_shard_texts, split_files
    from nanochat_core.tokenizer.bpe import Tokenizer, compute_token_bytes, save_token_bytes

    check_shards(split_files("train", data_dir))
    texts = _Counter(iter_shard_texts(split="train", data_dir=data_dir, max_chars=max_chars, doc_cap=doc_cap))
    t0 = time.perf_counter()
    tokenizer = Tokenizer.train_from_iterator(texts, vocab_size)
    train_seconds = time.perf_counter() - t0
    if texts.chars == 0:
        raise ValueError("the train shards hold no text: nothing to train the tokenizer on")

    out_dir = Path(out_dir) if out_dir is not None else settings.tokenizer_dir()
    # Compute everything first, then write the two files back to back: the window in which a
    # crash could leave a new tokenizer.pkl beside an old token_bytes.pt stays milliseconds wide.
    token_bytes = compute_token_bytes(tokenizer)
    tokenizer.save(out_dir)
    save_token_bytes(tokenizer, out_dir, token_bytes)
    real = token_bytes[token_bytes > 0].float()
    return {
        "train_seconds": train_seconds,
        "documents": texts.docs,
        "characters": texts.chars,
        "vocab_size": tokenizer.get_vocab_size(),
        "requested_vocab_size": vocab_size,
        "num_special_tokens": len(tokenizer.get_special_tokens()),
        "token_bytes_min": int(real.min()),
        "token_bytes_max": int(real.max()),
        "token_bytes_mean": float(real.mean()),
        "token_bytes_std": float(real.std()),
        "tokenizer_dir": str(out_dir),
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    print(f"max_chars: {args.max_chars:,} | doc_cap: {args.doc_cap:,} | vocab_size: {args.vocab_size:,}")
    try:
        stats = train(args.max_chars, args.doc_cap, args.vocab_size, data_dir=args.data_dir)
    except (FileNotFoundError, ValueError) as e:
        print(f"tok_train: error: {e}", file=sys.stderr)
        return 2
    print(f"Training time: {stats['train_seconds']:.2f}s on {stats['documents']:,} documents, {stats['characters']:,} characters")
    if stats["vocab_size"] < stats["requested_vocab_size"]:
        print(
            f"warning: the text only supported {stats['vocab_size']:,} tokens of the {stats['requested_vocab_size']:,} "
            "requested (no pair left to merge); train on more text for the full vocabulary"
        )
    print(f"Vocab size: {stats['vocab_size']:,} ({stats['num_special_tokens']} special tokens)")
    print(
        f"Token bytes: min {stats['token_bytes_min']} | max {stats['token_bytes_max']} | "
        f"mean {stats['token_bytes_mean']:.2f} | std {stats['token_bytes_std']:.2f}"
    )
    print(f"Saved tokenizer.pkl and token_bytes.pt to {stats['tokenizer_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
