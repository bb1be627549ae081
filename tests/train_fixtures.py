"""Small, fast training fixtures shared by the TRAIN tests: the generated corpus (helpers.py) written as
parquet shards, a tokenizer trained on it, CPU-sized base_train flags, and helpers to read loaders and to
interrupt a training command.

Everything is generated (no downloads, no /work/shared data) and built once per session; each test
gets its own NANOCHAT_BASE_DIR linking to the shared shards and tokenizer, so checkpoints never collide.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from helpers import generated_documents, write_shards

TINY_FLAGS = ["--depth", "2", "--aspect-ratio", "32", "--head-dim", "32", "--max-seq-len", "64",
              "--window-pattern", "L", "--device-batch-size", "4", "--total-batch-size", "256",
              "--eval-tokens", "512", "--core-metric-every", "-1", "--sample-every", "-1",
              "--peak-flops", "1e11", "--device-type", "cpu", "--warmup-steps", "2"]


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
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})  # a tiny model: one thread is fastest
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
