"""The CORE eval bundle: find it, or download and extract it (nanochat's scripts/base_eval.py fetches the same eval_bundle.zip).

nanochat publishes no checksum, so the sha256 of the zip we got is recorded next to it
(`eval_bundle.zip.json`) for provenance. The download resumes a partial `.part` file with an HTTP
Range request; extraction happens in a temporary folder beside the target and is renamed into place,
so an interrupted run never leaves a half-extracted bundle that looks complete.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from nanochat_core.common.atomic import write_json_atomic
from nanochat_core.common.file_hash import file_sha256

BUNDLE_URL = "https://karpathy-public.s3.us-west-2.amazonaws.com/eval_bundle.zip"
URL_ENV = "NANOCHAT_EVAL_BUNDLE_URL"  # tests and mirrors point this elsewhere
BUNDLE_DIR_ENV = "NANOCHAT_EVAL_BUNDLE_DIR"  # an unpacked bundle already on disk: used as is, before any download
CONFIG_NAME = "core.yaml"


def bundle_url() -> str:
    return os.environ.get(URL_ENV) or BUNDLE_URL


def default_bundle_dir() -> Path:
    """NANOCHAT_EVAL_BUNDLE_DIR (an unpacked bundle already on disk) when set, else $NANOCHAT_BASE_DIR/eval_bundle."""
    from nanochat_core.common import settings

    given = os.environ.get(BUNDLE_DIR_ENV)
    return Path(given).expanduser() if given else settings.eval_bundle_dir()


def ensure_bundle(bundle_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding core.yaml (default: default_bundle_dir()); downloaded and extracted first when absent."""
    bundle_dir = Path(bundle_dir) if bundle_dir is not None else default_bundle_dir()
    if (bundle_dir / CONFIG_NAME).is_file():
        return bundle_dir
    if bundle_dir.exists() and any(bundle_dir.iterdir()):
        raise FileNotFoundError(f"{bundle_dir} exists but has no {CONFIG_NAME}: not an eval bundle "
                                "(remove it to download the bundle, or pass the right --bundle-dir)")
    zip_path = bundle_dir.parent / f"{bundle_dir.name}.zip"
    if not zip_path.is_file():
        download(bundle_url(), zip_path)
    extract(zip_path, bundle_dir)
    return bundle_dir


def ensure_bundle_distributed(bundle_dir: str | os.PathLike | None, is_master: bool) -> Path:
    """ensure_bundle on rank 0 only, the other ranks waiting at a barrier: one download, never racing writers."""
    import torch.distributed as dist

    path = ensure_bundle(bundle_dir) if is_master else Path(bundle_dir or default_bundle_dir())
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
    return path


def download(url: str, dest: Path, chunk_size: int = 1 << 20) -> str:
    """Fetch `url` to `dest` (resuming `dest.part`), record its sha256 beside it, return the digest."""
    import httpx
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with httpx.stream("GET", url, headers=headers, follow_redirects=True, timeout=60.0) as resp:
            if resp.status_code == 416:  # the part file already holds everything
                total = have
            else:
                resp.raise_for_status()
                if have and resp.status_code != 206:  # server ignored Range: start over
                    have = 0
                length = resp.headers.get("content-length")
                total = have + int(length) if length is not None else None
                with open(part, "ab" if have else "wb") as f, \
                        tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=f"eval bundle {dest.name}") as bar:
                    for chunk in resp.iter_bytes(chunk_size):
                        f.write(chunk)
                        bar.update(len(chunk))
    except httpx.HTTPError as exc:
        raise RuntimeError(f"downloading the eval bundle from {url} failed: {exc} (partial data kept in {part}; "
                           f"set {URL_ENV} for a mirror, or put an extracted bundle in place)") from exc
    size = part.stat().st_size
    if total is not None and size != total:
        raise RuntimeError(f"downloading {url}: got {size} of {total} bytes (kept in {part}; run again to resume)")
    digest = file_sha256(part)
    os.replace(part, dest)
    write_json_atomic(dest.with_name(dest.name + ".json"), {"url": url, "sha256": digest, "bytes": size})
    return digest


def extract(zip_path: Path, bundle_dir: Path) -> None:
    """Unzip into a temp folder beside `bundle_dir`, then rename the folder holding core.yaml into place.
    nanochat's zip wraps everything in one top-level `eval_bundle/`; a zip without the wrapper works too."""
    bundle_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{bundle_dir.name}.extract-", dir=bundle_dir.parent))
    try:
        try:
            with zipfile.ZipFile(zip_path) as zf:
                zf.extractall(tmp)
        except zipfile.BadZipFile as exc:
            raise RuntimeError(f"{zip_path} is not a valid zip ({exc}); delete it to download again") from exc
        found = sorted(p.parent for p in tmp.rglob(CONFIG_NAME))
        if not found:
            raise RuntimeError(f"{zip_path} holds no {CONFIG_NAME}: not an eval bundle")
        if bundle_dir.exists():
            bundle_dir.rmdir()  # empty (ensure_bundle refuses a non-empty one)
        os.replace(found[0], bundle_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bundle_provenance(bundle_dir: Path) -> dict | None:
    """The recorded url/sha256 of the zip this bundle came from, when we downloaded it."""
    record = bundle_dir.parent / f"{bundle_dir.name}.zip.json"
    return json.loads(record.read_text(encoding="utf-8")) if record.is_file() else None



def bundle_contents(bundle_dir: Path) -> dict:
    """What an unpacked bundle holds: its core.yaml tasks present and missing (by label, with the
    file each needs), and the content hash of every file CORE reads (core.yaml,
    eval_meta_data.csv, the present tasks' data), which names the bundle wherever it lies."""
    from nanochat_core.common.file_hash import files_sha256
    from nanochat_core.evaluation.core_tasks import load_tasks

    specs = load_tasks(bundle_dir)
    present = [s for s in specs if s.data_path.is_file()]
    missing = {s.label: str(s.data_path.relative_to(bundle_dir)) for s in specs if not s.data_path.is_file()}
    files = [bundle_dir / CONFIG_NAME, bundle_dir / "eval_meta_data.csv"] + sorted({s.data_path for s in present})
    return {"tasks": len(specs), "present": [s.label for s in present], "missing": missing,
            "partial": bool(missing), "sha256": files_sha256(files)}
