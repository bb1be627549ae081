"""manifest.json: what a shard folder holds and where it came from.

Written last, after every shard is in place, so a folder with a manifest is a complete one. It
carries no timestamps: the same input and settings give a byte-identical manifest.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from nanochat_core.common.atomic import write_json_atomic

MANIFEST_NAME = "manifest.json"
FORMAT = "nanochat-shards/1"


@dataclass
class ShardInfo:
    name: str
    split: str  # "train" or "val"
    rows: int
    row_groups: int
    characters: int
    bytes: int
    sha256: str


def shards_sha256(shards: list[ShardInfo]) -> str:
    """One hash for the whole folder: changes if any shard's bytes, name or order change."""
    digest = hashlib.sha256()
    for s in shards:
        digest.update(f"{s.name} {s.sha256}\n".encode())
    return digest.hexdigest()


def build_manifest(
    source: dict,
    input_sha256: str,
    shards: list[ShardInfo],
    *,
    seed: int,
    row_group_size: int,
    chars_per_shard: int,
    layout: str,
) -> dict:
    return {
        "format": FORMAT,
        "documents": sum(s.rows for s in shards),
        "characters": sum(s.characters for s in shards),
        "content_sha256": shards_sha256(shards),
        # The hash of the documents as the source yielded them, before shuffling: for the embedded
        # corpus it identifies the installed versions the text came from.
        "source": {**source, "content_sha256": input_sha256},
        "settings": {"seed": seed, "row_group_size": row_group_size, "chars_per_shard": chars_per_shard,
                     "compression": "zstd", "compression_level": 3, "layout": layout},
        "shards": [asdict(s) for s in shards],
    }


def write_manifest(data_dir: Path, manifest: dict) -> Path:
    path = Path(data_dir) / MANIFEST_NAME
    write_json_atomic(path, manifest)
    return path


def read_manifest(data_dir: Path) -> dict:
    path = Path(data_dir) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"No {MANIFEST_NAME} in {data_dir}: run `python -m nanochat_core.cli.repackage_data`")
    return json.loads(path.read_text(encoding="utf-8"))
