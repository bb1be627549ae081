"""Checks that an asset's upstream files are still on disk (deleted by hand -> a clear failure)."""
from __future__ import annotations

from pathlib import Path


def require_files(what: str, paths: list[Path], producer: str) -> None:
    """Fail with a message naming the missing file and the asset that makes it."""
    import dagster as dg

    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise dg.Failure(f"{what}: missing on disk: {', '.join(missing)}. Materialize `{producer}` again to rebuild it.")
