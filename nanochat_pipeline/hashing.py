"""Content hashes used as Dagster data versions, so "unsynced" tracks real change, not reruns."""
from __future__ import annotations

import hashlib
from pathlib import Path


def files_sha256(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def require_files(what: str, paths: list[Path], producer: str) -> None:
    """Fail with a message naming the missing file and the asset that makes it."""
    import dagster as dg

    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise dg.Failure(f"{what}: missing on disk: {', '.join(missing)}. Materialize `{producer}` again to rebuild it.")
