"""Finding and reading the parquet shards in base_data/ (nanochat's layout).

Shards are `shard_00000.parquet`, ... with one `text` column; sorted order is the canonical
order: every file but the last is train, the last is validation.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pyarrow.parquet as pq

from nanochat_core.common import settings

TEXT_COLUMN = "text"


def shard_name(index: int) -> str:
    """The file name of shard `index` (5 digits, as nanochat names them)."""
    return f"shard_{index:05d}.parquet"


def _is_visible_parquet(path: Path) -> bool:
    # Temporary files (atomic writes use ".<name>.tmp-<pid>") and hidden files are never shards.
    name = path.name
    return path.is_file() and name.endswith(".parquet") and not name.startswith((".", "_", "~")) and ".tmp" not in name


def list_parquet_files(data_dir: Path | None = None) -> list[Path]:
    """Sorted shard files in `data_dir` (default $NANOCHAT_BASE_DIR/base_data)."""
    data_dir = Path(data_dir) if data_dir is not None else settings.base_data_dir()
    files = sorted(p for p in data_dir.glob("*.parquet") if _is_visible_parquet(p)) if data_dir.is_dir() else []
    if not files:
        raise FileNotFoundError(
            f"No parquet shards in {data_dir}. Create them first with "
            "`python -m nanochat_core.cli.repackage_data --source embedded|local|fineweb-edu`."
        )
    return files


def split_files(split: str, data_dir: Path | None = None) -> list[Path]:
    """'train' = every shard but the last, 'val' = the last one."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    files = list_parquet_files(data_dir)
    if len(files) < 2:
        raise ValueError(
            f"Need at least 2 parquet shards in {files[0].parent} (train + val), found {len(files)}: "
            "re-run repackage_data (it always writes at least one train and one val shard)."
        )
    return files[:-1] if split == "train" else files[-1:]


def iter_texts(files: list[Path], max_chars: int | None = None, doc_cap: int | None = None) -> Iterator[str]:
    """Texts of `files` in order, one row group in memory at a time.

    doc_cap crops each document to that many characters; iteration stops once max_chars
    characters (after cropping) have been yielded, as nanochat's tokenizer trainer does.
    """
    total = 0
    for path in files:
        pf = pq.ParquetFile(path)
        if TEXT_COLUMN not in pf.schema_arrow.names:
            raise ValueError(f"{path}: no '{TEXT_COLUMN}' column (columns: {pf.schema_arrow.names})")
        for rg in range(pf.num_row_groups):
            for text in pf.read_row_group(rg, columns=[TEXT_COLUMN]).column(0).to_pylist():
                if text is None:
                    continue
                if doc_cap is not None and len(text) > doc_cap:
                    text = text[:doc_cap]
                yield text
                total += len(text)
                if max_chars is not None and total >= max_chars:
                    return


def iter_shard_texts(
    split: str = "train",
    data_dir: Path | None = None,
    max_chars: int | None = None,
    doc_cap: int | None = None,
) -> Iterator[str]:
    """Texts of the train or val shards (see iter_texts)."""
    return iter_texts(split_files(split, data_dir), max_chars=max_chars, doc_cap=doc_cap)
