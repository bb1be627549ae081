"""FineWeb-Edu (the corpus nanochat trains on) from the Hugging Face Hub, via huggingface_hub.

The dataset and revision are pinned so a given --num-files always means the same documents.
Files land in huggingface_hub's cache (or --download-dir); hf_hub_download resumes partial
downloads and skips complete ones, so an interrupted download continues where it stopped.
HF_ENDPOINT (read at call time, not at import) points everything at another Hub, e.g. the test
server on 127.0.0.1.
"""
from __future__ import annotations

import os
from pathlib import Path

from nanochat_core.data.sources import Source, SourceError, iter_file_documents

FINEWEB_REPO = "HuggingFaceFW/fineweb-edu"
FINEWEB_SUBSET = "sample/100BT"  # nanochat's `sample-100BT` config
# A commit of HuggingFaceFW/fineweb-edu (pinned: the main branch is re-written from time to time).
FINEWEB_REVISION = "3c452cb1c31a957685cf2699bfd051afacd37422"


def _hub_settings() -> tuple[str | None, str | None]:
    return os.environ.get("HF_ENDPOINT") or None, os.environ.get("HF_TOKEN") or None


# Class names (anywhere in an exception's MRO) that mean the Hub could not be reached at all:
# httpx's TransportError (huggingface_hub's client, whichever httpx package it ships with), the
# socket module's errors.
NETWORK_ERRORS = {"TransportError", "ConnectionError", "gaierror", "TimeoutError"}


def network_cause(error: BaseException) -> BaseException | None:
    """The network error behind `error` (itself or a cause or context of it), or None."""
    seen = 0
    while error is not None and seen < 20:
        if NETWORK_ERRORS & {c.__name__ for c in type(error).__mro__}:
            return error
        error, seen = error.__cause__ or error.__context__, seen + 1
    return None


def hub_unreachable(endpoint: str | None, why: str) -> SourceError:
    """What failed (the Hub, at which host), why ("ConnectError: ..."), and what to do, in one sentence."""
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = endpoint or constants.ENDPOINT
    where = f"{urlparse(url).netloc or url}" + (" (HF_ENDPOINT)" if endpoint else "")
    return SourceError(f"cannot reach the Hugging Face Hub at {where}: {why}; check the network and HF_ENDPOINT, "
                       "or use a corpus that needs none ([corpus] source = \"embedded\" or \"local\")")


def described(cause: BaseException) -> str:
    return f"{type(cause).__name__}: {cause}"


def check_hub_answers(endpoint: str | None) -> None:
    """One HEAD request to the Hub, no retries, a few seconds at most: with no network the corpus fails at
    once, naming the host, instead of after huggingface_hub's ~24 s of retries (meant for a transient
    error on a network that works, which the calls after this keep). Skipped in HF_HUB_OFFLINE mode,
    where huggingface_hub itself refuses to reach out."""
    from huggingface_hub import constants

    from nanochat_core.common.reachability import hub_url, probe

    if constants.is_offline_mode():
        return
    url = hub_url()  # HF_ENDPOINT, read now, as `endpoint` was
    answer = probe([url])[url]
    if not answer.answered:
        raise hub_unreachable(endpoint, answer.detail)


def list_fineweb_files(revision: str = FINEWEB_REVISION, subset: str = FINEWEB_SUBSET) -> list[str]:
    """Sorted repo paths of the subset's parquet files at `revision` (one Hub API call)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    endpoint, token = _hub_settings()
    check_hub_answers(endpoint)
    api = HfApi(endpoint=endpoint, token=token)
    try:
        entries = api.list_repo_tree(FINEWEB_REPO, path_in_repo=subset, revision=revision, repo_type="dataset")
        paths = sorted(e.path for e in entries if e.path.endswith(".parquet"))
    except Exception as e:  # unreachable first: huggingface_hub wraps some network errors in its HTTP errors
        if (cause := network_cause(e)) is not None:
            raise hub_unreachable(endpoint, described(cause)) from e
        if isinstance(e, HfHubHTTPError):
            raise SourceError(f"cannot list {FINEWEB_REPO}/{subset} at revision {revision}: {e}") from e
        raise
    if not paths:
        raise SourceError(f"{FINEWEB_REPO}/{subset} at revision {revision} holds no parquet files")
    return paths


def download_fineweb(
    num_files: int = 1,
    revision: str = FINEWEB_REVISION,
    subset: str = FINEWEB_SUBSET,
    download_dir: Path | None = None,
) -> list[Path]:
    """Download the first `num_files` parquet files (-1: all), resuming partial ones."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError
    from tqdm.auto import tqdm

    paths = list_fineweb_files(revision, subset)
    if num_files >= 0:
        paths = paths[:num_files]
    endpoint, token = _hub_settings()
    local: list[Path] = []
    for repo_path in tqdm(paths, desc="fineweb-edu files", unit="file"):
        try:
            local.append(Path(hf_hub_download(
                FINEWEB_REPO, repo_path, repo_type="dataset", revision=revision, endpoint=endpoint, token=token,
                local_dir=download_dir,  # None: the huggingface_hub cache
            )))
        except Exception as e:
            if (cause := network_cause(e)) is not None:
                raise hub_unreachable(endpoint, described(cause)) from e
            if isinstance(e, HfHubHTTPError):
                raise SourceError(f"download of {FINEWEB_REPO}/{repo_path} failed: {e}") from e
            raise
    return local


def fineweb_source(
    num_files: int = 1,
    revision: str = FINEWEB_REVISION,
    subset: str = FINEWEB_SUBSET,
    download_dir: Path | None = None,
) -> Source:
    """Downloads first (so the repackaging pass reads local files), then streams their `text` column."""
    files = download_fineweb(num_files, revision, subset, download_dir)
    return Source(
        description={"kind": "fineweb-edu", "repo": FINEWEB_REPO, "subset": subset, "revision": revision,
                     "files": [f.name for f in files]},
        documents=lambda: iter_file_documents(files, "text"),
    )
