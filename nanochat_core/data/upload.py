"""Push a shard folder (shards + manifest.json) to a Hugging Face Hub dataset repo.

Uses huggingface_hub's resumable large-folder upload: `upload_large_folder` where the installed
huggingface_hub has it (< 2.0); from 2.0 on that function is gone and `upload_folder` itself is
the resumable, multi-commit upload (re-running skips committed files and deduplicates data).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from nanochat_core.data.manifest import MANIFEST_NAME

UPLOAD_PATTERNS = ["shard_*.parquet", MANIFEST_NAME]
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


class UploadError(RuntimeError):
    """The upload cannot start or failed; the message says why."""


def upload_shards(data_dir: Path, repo_id: str, private: bool = False) -> str:
    """Upload `data_dir`'s shards and manifest to dataset repo `repo_id`; returns the repo URL.

    Checks everything that can be checked locally (HF_TOKEN, repo name, manifest present) before
    the first network call.
    """
    token = os.environ.get("HF_TOKEN")
    if not token:
        raise UploadError(
            f"--upload-repo {repo_id}: HF_TOKEN is not set. Create a write token at "
            "https://huggingface.co/settings/tokens and export HF_TOKEN (or put it in .env)."
        )
    if not _REPO_ID.match(repo_id):
        raise UploadError(f"--upload-repo {repo_id!r}: expected OWNER/NAME")
    data_dir = Path(data_dir)
    if not (data_dir / MANIFEST_NAME).is_file():
        raise UploadError(f"{data_dir} has no {MANIFEST_NAME}: repackage the data before uploading it")

    from huggingface_hub import HfApi

    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=token)
    try:
        url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if hasattr(api, "upload_large_folder"):
            api.upload_large_folder(repo_id=repo_id, folder_path=data_dir, repo_type="dataset",
                                    private=private, allow_patterns=UPLOAD_PATTERNS)
        else:
            api.upload_folder(repo_id=repo_id, folder_path=data_dir, repo_type="dataset",
                              allow_patterns=UPLOAD_PATTERNS, commit_message="Upload nanochat shards")
    except Exception as e:  # HTTP status errors and transport errors alike: say what failed, keep the cause
        raise UploadError(f"upload of {data_dir} to dataset {repo_id} failed: {e}") from e
    return str(url)
