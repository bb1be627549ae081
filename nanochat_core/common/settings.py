"""Where artifacts live and how secrets are found.

NANOCHAT_BASE_DIR (default ~/.cache/nanochat) is the root of every artifact, laid out as
nanochat lays it out, so a nanochat user's files and ours are interchangeable.
"""
from __future__ import annotations

import os
from pathlib import Path

DEFAULT_BASE_DIR = "~/.cache/nanochat"


def base_dir() -> Path:
    """The artifact root, created on first use."""
    root = Path(os.environ.get("NANOCHAT_BASE_DIR") or DEFAULT_BASE_DIR).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def load_dotenv_file() -> None:
    """Load `.env` from the working directory; variables already set win (nanochat's behaviour)."""
    from dotenv import load_dotenv

    env_file = Path.cwd() / ".env"
    if env_file.is_file():
        load_dotenv(env_file, override=False)


# The on-disk layout of $NANOCHAT_BASE_DIR. Each function takes an optional root so the
# pipeline can lay out a preset's own tree ($BASE/pipeline/<preset>/) the same way.

def _under(name: str, root: Path | None) -> Path:
    return (root if root is not None else base_dir()) / name


def base_data_dir(root: Path | None = None) -> Path:
    return _under("base_data", root)


def tokenizer_dir(root: Path | None = None) -> Path:
    return _under("tokenizer", root)


def base_checkpoints_dir(root: Path | None = None) -> Path:
    return _under("base_checkpoints", root)


def base_eval_dir(root: Path | None = None) -> Path:
    return _under("base_eval", root)


def chatsft_checkpoints_dir(root: Path | None = None) -> Path:
    return _under("chatsft_checkpoints", root)


def chatrl_checkpoints_dir(root: Path | None = None) -> Path:
    return _under("chatrl_checkpoints", root)


def chat_eval_dir(root: Path | None = None) -> Path:
    return _under("chat_eval", root)


def eval_bundle_dir(root: Path | None = None) -> Path:
    return _under("eval_bundle", root)


def task_data_dir(root: Path | None = None) -> Path:
    return _under("task_data", root)


def report_dir(root: Path | None = None) -> Path:
    return _under("report", root)
