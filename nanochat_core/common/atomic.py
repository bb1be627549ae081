"""Write files so that a crash never leaves a half-written artifact behind.

Everything is written to a temporary name in the destination folder and renamed into place
(rename is atomic on one filesystem).
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `final`; rename it to `final` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(final: str | os.PathLike, text: str) -> None:
    with atomic_path(final) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(final: str | os.PathLike, obj) -> None:
    write_text_atomic(final, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_torch_atomic(obj, final: str | os.PathLike) -> None:
    import torch

    with atomic_path(final) as tmp:
        torch.save(obj, tmp)
