"""Compression of our tokenizer: `python -m nanochat_core.cli.tok_eval`.

Prints bytes/token (higher = better compression) on built-in samples and on our train and val
shards, side by side with tiktoken's gpt2 and cl100k_base when those load (they are downloaded
by tiktoken on first use, so offline they are reported as not available).
"""
from __future__ import annotations

import argparse
import sys
import threading

from nanochat_core.cli.arg_types import positive_int
from nanochat_core.tokenizer.samples import SAMPLES

REFERENCE_ENCODINGS = ("gpt2", "cl100k_base")


def load_reference_encoding(name: str, timeout: float = 30.0):
    """tiktoken.get_encoding(name), or (None, why) when it cannot be had offline.

    Runs in a daemon thread with a timeout: tiktoken downloads without one, and a firewalled
    network may hang instead of failing.
    """
    import tiktoken

    result: dict = {}

    def load():
        try:
            result["enc"] = tiktoken.get_encoding(name)
        except Exception as e:  # any failure means "not available": no network, no cache
            result["error"] = f"{type(e).__name__}"

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(timeout)
    if "enc" in result:
        return result["enc"], None
    return None, result.get("error", f"timed out after {timeout:.0f}s")


def shard_sample(split: str, max_chars: int) -> str | None:
    """The first max_chars characters of a split's documents, joined by newlines; None without shards."""
    from nanochat_core.data.parquet_files import iter_shard_texts

    try:
        return "\n".join(iter_shard_texts(split=split, max_chars=max_chars))
    except (FileNotFoundError, ValueError) as e:
        print(f"note: no {split} text ({e})")
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Bytes/token of our tokenizer vs gpt2 and cl100k_base.")
    parser.add_argument("--shard-chars", type=positive_int, default=1_000_000, help="characters of train/val text to measure (default 1e6)")
    args = parser.parse_args(argv)

    from nanochat_core.tokenizer.bpe import get_tokenizer

    try:
        ours = get_tokenizer()
    except (FileNotFoundError, ValueError) as e:
        print(f"tok_eval: error: {e}", file=sys.stderr)
        return 2

    encoders = {"ours": ours.encode}
    for name in REFERENCE_ENCODINGS:
        enc, why = load_reference_encoding(name)
        if enc is None:
            print(f"{name}: not available ({why}; tiktoken downloads it on first use and this machine is offline)")
        else:
            encoders[name] = enc.encode_ordinary

    texts = dict(SAMPLES)
    for split in ("train", "val"):
        text = shard_sample(split, args.shard_chars)
        if text:
            texts[f"our-{split}"] = text

    print(format_table(texts, encoders))
    return 0


def format_table(texts: dict[str, str], encoders: dict) -> str:
    """One row per text: its UTF-8 bytes, then tokens and bytes/token per tokenizer."""
    header = f"{'text':<10} {'bytes':>10}" + "".join(f" {n + ' tok':>14} {n + ' B/T':>12}" for n in encoders)
    lines = [header, "-" * len(header)]
    for label, text in texts.items():
        n_bytes = len(text.encode("utf-8"))
        row = f"{label:<10} {n_bytes:>10,}"
        for encode in encoders.values():
            n_tokens = len(encode(text))
            row += f" {n_tokens:>14,} {n_bytes / max(n_tokens, 1):>12.2f}"
        lines.append(row)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
