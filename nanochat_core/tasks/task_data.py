"""Where chat task data comes from: local release files, or the Hugging Face Hub, cached on disk.

One option (`--task-data DIR`, default `$NANOCHAT_TASK_DATA` or `$BASE/task_data`) serves chat_sft,
chat_eval and the pipeline's task_data asset. For each task:
  1. local release files under `DIR/<task>/` (any depth: ../shared/data's layout works as is,
     e.g. DIR/gsm8k/grade_school_math/data/train.jsonl), else
  2. parquet files already downloaded to `DIR/hub/<repo>/`, else
  3. a download of the split's parquet files from the Hub with huggingface_hub (HF_ENDPOINT and
     HF_TOKEN honoured; hf_hub_download resumes partial files).
When none works the task raises TaskDataMissing, which callers report and leave out, never
silently.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from nanochat_core.common import settings
from nanochat_core.common.atomic import write_json_atomic


class TaskDataMissing(RuntimeError):
    """A task's data is neither on disk nor downloadable; the message says where it was looked for."""


@dataclass(frozen=True)
class HubSplit:
    """The parquet files of one split in a Hub dataset repo: `<folder>/<split>-*.parquet`."""

    repo: str
    folder: str
    split: str


def task_data_root(option: str | os.PathLike | None = None) -> Path:
    if option:
        return Path(option).expanduser()
    env = os.environ.get("NANOCHAT_TASK_DATA")
    return Path(env).expanduser() if env else settings.task_data_dir()


def local_files(root: Path, task_folder: str, patterns: list[str]) -> list[Path]:
    """Release files under root/<task_folder>/ matching any of `patterns` (file-name globs), sorted."""
    base = root / task_folder
    if not base.is_dir():
        return []
    found = {p for pattern in patterns for p in base.rglob(pattern) if p.is_file()}
    return sorted(found)


def hub_files(root: Path, hub: HubSplit) -> list[Path]:
    """The split's parquet files: from root/hub/<repo>/ when a download completed before, else the Hub."""
    local_dir = root / "hub" / hub.repo
    record = local_dir / f".complete-{hub.folder.replace('/', '_')}-{hub.split}.json"
    if record.is_file():
        files = [local_dir / p for p in json.loads(record.read_text())["files"]]
        if all(f.is_file() for f in files):
            return files
    files = _download(hub, local_dir)
    # Written last: a download interrupted half-way is resumed next time, never taken as complete.
    write_json_atomic(record, {"repo": hub.repo, "files": [str(f.relative_to(local_dir)) for f in files]})
    return files


# Set once a connection to the Hub failed in this process: every later task would wait through the
# same retries (about 25 s each) only to fail the same way.
_unreachable: str | None = None


def _download(hub: HubSplit, local_dir: Path) -> list[Path]:
    global _unreachable
    where = f"{hub.repo}/{hub.folder} ({hub.split})"
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise TaskDataMissing(f"{where} is not on disk and HF_HUB_OFFLINE is set")
    if _unreachable:
        raise TaskDataMissing(f"{where} is not on disk and the Hub was unreachable ({_unreachable})")
    # Imported only now: huggingface_hub reads HF_HUB_OFFLINE once, at import.
    from huggingface_hub import HfApi, hf_hub_download

    endpoint, token = os.environ.get("HF_ENDPOINT") or None, os.environ.get("HF_TOKEN") or None
    try:
        entries = HfApi(endpoint=endpoint, token=token).list_repo_tree(
            hub.repo, path_in_repo=hub.folder, repo_type="dataset")
        paths = sorted(e.path for e in entries
                       if e.path.endswith(".parquet") and Path(e.path).name.startswith(f"{hub.split}-"))
        if not paths:
            raise TaskDataMissing(f"the Hub dataset {where} has no parquet files for split {hub.split!r}")
        return [Path(hf_hub_download(hub.repo, p, repo_type="dataset", endpoint=endpoint, token=token,
                                     local_dir=local_dir)) for p in paths]
    except TaskDataMissing:
        raise
    except Exception as e:  # offline, unknown repo, refused token: huggingface_hub, httpx and OS errors
        if not isinstance(e, OSError) and not type(e).__module__.startswith(("huggingface_hub", "httpx", "httpcore")):
            raise
        if "Connect" in type(e).__name__ or isinstance(e, ConnectionError):
            _unreachable = f"{type(e).__name__}: {e}"
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise TaskDataMissing(f"could not download {where} from the Hub: {type(e).__name__}: {first_line}") from e


def resolve_files(root: Path, task_folder: str, patterns: list[str], hub: HubSplit) -> list[Path]:
    """Local release files if present, else the Hub split; TaskDataMissing says what was tried."""
    found = local_files(root, task_folder, patterns)
    if found:
        return found
    try:
        return hub_files(root, hub)
    except TaskDataMissing as e:
        raise TaskDataMissing(f"{e}; no local release files either (looked for {', '.join(patterns)} "
                              f"under {root / task_folder})") from None
