"""The cells the scaling ladder added to a preset's grid: <preset root>/ladder_cells.json.

A file (not the preset): the preset is the user's, the ladder's growth is a run's result. Written
atomically; partitions.py reads it when the definitions load, so the cells become partitions.
"""
from __future__ import annotations

import json
from pathlib import Path

from nanochat_core.common.atomic import write_json_atomic

LADDER_FILE = "ladder_cells.json"


def ladder_file(root: Path) -> Path:
    return Path(root) / LADDER_FILE


def read_ladder_cells(root: Path) -> list[dict]:
    """[{"depth": int, "flops": key, "why": str}], empty when the ladder never ran; a broken file is an
    error naming it (never silently an empty ladder)."""
    path = ladder_file(root)
    if not path.is_file():
        return []
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        return [{"depth": int(c["depth"]), "flops": str(c["flops"]), "why": str(c.get("why", ""))} for c in cells]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a ladder cells file ({type(e).__name__}: {e}); delete it to start the ladder afresh") from None


def add_ladder_cells(root: Path, cells: list[dict]) -> list[dict]:
    """Append cells not already listed; return the whole list."""
    current = read_ladder_cells(root)
    seen = {(c["depth"], c["flops"]) for c in current}
    current += [c for c in cells if (c["depth"], c["flops"]) not in seen]
    write_json_atomic(ladder_file(root), {"cells": current})
    return current
