"""Content hashes of files: manifests, the eval bundle's record, and the pipeline's data versions."""
from __future__ import annotations

import hashlib
from pathlib import Path

_BLOCK = 1 << 20  # read in 1 MiB blocks: shards and checkpoints never need to fit in memory


def _update(digest, path: Path) -> None:
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            digest.update(block)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    _update(digest, path)
    return digest.hexdigest()


def files_sha256(paths: list[Path]) -> str:
    """One hash over several files, each preceded by its name, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        digest.update(path.name.encode())
        _update(digest, path)
    return digest.hexdigest()
