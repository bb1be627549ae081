"""Small, fast training fixtures shared by the TRAIN tests: a generated corpus written as parquet
shards, a tokenizer trained on it, CPU-sized base_train flags, and helpers to read loaders and to
interrupt a training command.

Everything is generated (no downloads, no /work/shared data) and built once per session; each test
gets its own NANOCHAT_BASE_DIR linking to the shared shards and tokenizer, so checkpoints never collide.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SUBJECTS = ["the cat", "a dog", "the old man", "my friend", "the teacher", "a small bird", "the farmer",
            "our neighbour", "the child", "a young woman", "the captain", "every student"]
VERBS = ["sees", "likes", "finds", "follows", "helps", "watches", "paints", "calls", "carries", "remembers"]
OBJECTS = ["a red ball", "the green door", "an apple", "the long road", "a quiet song", "the blue boat",
           "a heavy box", "the bright star", "two letters", "the warm bread"]
PLACES = ["in the park", "at home", "near the river", "under the tree", "by the sea", "on the hill",
          "after dinner", "before school", "in the morning", "at night"]

TINY_FLAGS = ["--depth", "2", "--aspect-ratio", "32", "--head-dim", "32", "--max-seq-len", "64",
              "--window-pattern", "L", "--device-batch-size", "4", "--total-batch-size", "256",
              "--eval-tokens", "512", "--core-metric-every", "-1", "--sample-every", "-1",
              "--peak-flops", "1e11", "--device-type", "cpu", "--warmup-steps", "2"]


def generated_documents(n_docs: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        sentences = []
        for _ in range(rng.randint(2, 12)):
            s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(PLACES)}."
            sentences.append(s[0].upper() + s[1:])
        if rng.random() < 0.3:
            a, b = rng.randint(0, 99), rng.randint(0, 99)
            sentences.append(f"{a} plus {b} is {a + b}.")
        docs.append(" ".join(sentences))
    return docs


def write_shards(data_dir: Path, shards: list[list[str]], row_group_size: int) -> list[Path]:
    """Write `shards` (lists of documents) as shard_XXXXX.parquet: one text column, zstd."""
    data_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, docs in enumerate(shards):
        path = data_dir / f"shard_{i:05d}.parquet"
        pq.write_table(pa.table({"text": docs}), path, row_group_size=row_group_size,
                       compression="zstd", compression_level=3)
        paths.append(path)
    return paths


def write_tokenizer(tok_dir: Path, texts, vocab_size: int):
    from nanochat_core.tokenizer.bpe import Tokenizer, save_token_bytes

    tok = Tokenizer.train_from_iterator(iter(texts), vocab_size)
    tok.save(tok_dir)
    save_token_bytes(tok, tok_dir)
    return tok


def build_base(root: Path, n_docs: int = 1200, vocab_size: int = 384) -> Path:
    """$BASE with base_data/ (2 train shards + val, row groups of 64) and tokenizer/."""
    docs = generated_documents(n_docs)
    n_val = n_docs // 10
    train = docs[:-n_val]
    half = len(train) // 2
    write_shards(root / "base_data", [train[:half], train[half:], docs[-n_val:]], row_group_size=64)
    write_tokenizer(root / "tokenizer", train, vocab_size)
    return root


def take(it, n):
    """The next n (x, y, state) batches of a loader, copied; each state round-tripped through JSON."""
    out = []
    for _ in range(n):
        x, y, state = next(it)
        out.append((x.clone(), y.clone(), json.loads(json.dumps(state))))  # states must be JSON-able
    return out


def sigint_at_line(cmd: list[str], prefix: str):
    """Run `cmd` and send it SIGINT once it prints a line starting with `prefix`; return the finished
    process, the lines read up to then, and the rest of its output (stderr merged into stdout)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith(prefix):
            proc.send_signal(signal.SIGINT)
            break
    rest, _ = proc.communicate(timeout=60)
    return proc, lines, rest


def link_base(shared: Path, fresh: Path) -> Path:
    """A fresh $BASE sharing `shared`'s shards and tokenizer (read-only use)."""
    fresh.mkdir(parents=True, exist_ok=True)
    for name in ("base_data", "tokenizer"):
        (fresh / name).symlink_to(shared / name, target_is_directory=True)
    return fresh
