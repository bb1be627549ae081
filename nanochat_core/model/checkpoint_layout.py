"""Where a checkpoint's files lie and what its meta says, without torch: the half of checkpoint.py
that a pipeline process needs (is there an interrupted run to resume? which step is the last one?)
before or instead of loading tensors; importing torch costs a run worker ~2 s of CPU per cell.
The layout is nanochat's (see checkpoint.py)."""
from __future__ import annotations

import json
import re
from pathlib import Path

from nanochat_core.common import settings
from nanochat_core.common.atomic import write_json_atomic

_META_RE = re.compile(r"^meta_(\d{6,})\.json$")
_CHECKPOINT_FILE_RE = re.compile(r"^(model_\d{6,}\.pt|optim_\d{6,}_rank\d+\.pt)$")
_DEPTH_TAG_RE = re.compile(r"^d(\d+)$")


def model_path(ckpt_dir: Path, step: int) -> Path:
    return Path(ckpt_dir) / f"model_{step:06d}.pt"


def optim_path(ckpt_dir: Path, step: int, rank: int) -> Path:
    return Path(ckpt_dir) / f"optim_{step:06d}_rank{rank}.pt"


def meta_path(ckpt_dir: Path, step: int) -> Path:
    return Path(ckpt_dir) / f"meta_{step:06d}.json"


def checkpoint_dir(model_tag: str, root: Path | None = None) -> Path:
    """<root>/<tag>, root defaulting to $NANOCHAT_BASE_DIR/base_checkpoints."""
    return Path(root if root is not None else settings.base_checkpoints_dir()) / model_tag


def find_last_step(ckpt_dir: Path) -> int:
    """The largest step with a complete checkpoint (its meta file exists)."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        raise FileNotFoundError(f"no checkpoint folder {ckpt_dir} (train a model first: base_train)")
    steps = [int(m.group(1)) for f in ckpt_dir.iterdir() if (m := _META_RE.match(f.name))]
    if not steps:
        raise FileNotFoundError(f"no complete checkpoint (meta_*.json) in {ckpt_dir}")
    return max(steps)


def remove_checkpoints(ckpt_dir: Path) -> int:
    """Delete every checkpoint (meta, model, optimizer shards) in `ckpt_dir`, metas first so that no
    half-removed step still counts as complete; other files stay. Returns how many steps there were."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return 0
    metas = [f for f in ckpt_dir.iterdir() if _META_RE.match(f.name)]
    for f in metas:
        f.unlink()
    for f in ckpt_dir.iterdir():
        if _CHECKPOINT_FILE_RE.match(f.name):
            f.unlink()
    return len(metas)


def find_largest_model_tag(checkpoints_dir: Path | None = None) -> str:
    """The tag of the deepest model (`d<N>` with the largest N); otherwise the newest folder."""
    root = Path(checkpoints_dir if checkpoints_dir is not None else settings.base_checkpoints_dir())
    tags = [d for d in root.iterdir() if d.is_dir()] if root.is_dir() else []
    if not tags:
        raise FileNotFoundError(f"no checkpoints in {root} (train a model first: base_train)")
    depth_tags = [(int(m.group(1)), d.name) for d in tags if (m := _DEPTH_TAG_RE.match(d.name))]
    if depth_tags:
        return max(depth_tags)[1]
    return max(tags, key=lambda d: d.stat().st_mtime).name


def load_meta(ckpt_dir: Path, step: int) -> dict:
    path = meta_path(ckpt_dir, step)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at step {step}: {path} is missing")
    return json.loads(path.read_text(encoding="utf-8"))


def update_meta(meta_file: Path, **fields) -> None:
    """Add fields (an evaluation's score) to a checkpoint's meta json, rewritten atomically."""
    meta = json.loads(Path(meta_file).read_text(encoding="utf-8"))
    meta.update(fields)
    write_json_atomic(meta_file, meta)
