"""Tokenizer training: our Tokenizer.train_from_iterator vs bare rustbpe on the same text.

Our wrapper adds the export to tiktoken (and tok_train adds saving + token_bytes); the goal is
under 10% overhead over rustbpe alone. Each timing is the best of --repeats runs, alternating the
two so machine noise hits both alike.

    python benchmarks/bench_tokenizer.py [--text-file FILE ...] [--target-mb 8] [--vocab-size 8192] [--repeats 3]
"""
from __future__ import annotations

import argparse
import gzip
import json
import sysconfig
import tempfile
import time
from pathlib import Path

WEBTEXT = Path("/work/shared/data/webtext")


def load_docs(files: list[Path]) -> list[str]:
    """Documents from .txt (one per line), .jsonl / .json.gz ({"text": ...} per line) files."""
    docs: list[str] = []
    for path in files:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                docs.append(json.loads(line)["text"] if ".json" in path.name else line)
    return docs


def default_docs(target_mb: float) -> list[str]:
    """The shared webtext samples if present, topped up to target_mb with the standard library's
    Python sources (deterministic, always installed), so the timing is not lost in noise."""
    files = sorted(WEBTEXT.glob("*/data/*.jsonl")) + sorted(WEBTEXT.glob("*/data/*.txt")) if WEBTEXT.is_dir() else []
    docs = load_docs(files)
    size = sum(len(d.encode("utf-8")) for d in docs)
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        if size >= target_mb * 1e6:
            break
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        docs.append(text)
        size += len(text.encode("utf-8"))
    return docs


def time_bare(docs, vocab_size: int, pattern: str) -> float:
    import rustbpe

    t0 = time.perf_counter()
    bpe = rustbpe.Tokenizer()
    bpe.train_from_iterator(iter(docs), vocab_size - 9, pattern=pattern)
    bpe.get_mergeable_ranks()
    return time.perf_counter() - t0


def time_ours(docs, vocab_size: int) -> tuple[float, float]:
    """(train_from_iterator seconds, + save tokenizer.pkl and token_bytes.pt seconds)."""
    from nanochat_core.tokenizer.bpe import Tokenizer, save_token_bytes

    t0 = time.perf_counter()
    tok = Tokenizer.train_from_iterator(iter(docs), vocab_size)
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        tok.save(d)
        save_token_bytes(tok, d)
    return t1 - t0, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--text-file", type=Path, nargs="*", default=None, help=".txt / .jsonl / .json.gz files")
    p.add_argument("--target-mb", type=float, default=8.0, help="default text size when no --text-file (MB)")
    p.add_argument("--vocab-size", type=int, default=8192)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    from nanochat_core.tokenizer.bpe import SPLIT_PATTERN

    docs = load_docs(args.text_file) if args.text_file else default_docs(args.target_mb)
    n_bytes = sum(len(d.encode("utf-8")) for d in docs)
    print(f"text: {len(docs):,} documents, {n_bytes / 1e6:.2f} MB | vocab {args.vocab_size:,} | best of {args.repeats}")
    time_bare(docs, args.vocab_size, SPLIT_PATTERN)  # warm-up: first-call costs hit neither side
    bare, ours, full = [], [], []
    for _ in range(args.repeats):
        bare.append(time_bare(docs, args.vocab_size, SPLIT_PATTERN))
        o, f = time_ours(docs, args.vocab_size)
        ours.append(o)
        full.append(f)
    b, o, f = min(bare), min(ours), min(full)
    print(f"bare rustbpe (train + ranks):          {b:8.3f} s  ({n_bytes / 1e6 / b:.2f} MB/s)")
    print(f"ours Tokenizer.train_from_iterator:    {o:8.3f} s  overhead {100 * (o - b) / b:+.1f}% (goal < 10%)")
    print(f"ours + save tokenizer.pkl/token_bytes: {f:8.3f} s  overhead {100 * (f - b) / b:+.1f}%")


if __name__ == "__main__":
    main()
