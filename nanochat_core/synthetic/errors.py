"""Errors that stop a synthetic-data run as a whole (one bad answer is retried, not raised here).

The CLI prints their message and exits non-zero; the pipeline shows it in the run's log.
"""
from __future__ import annotations


class SyntheticDataError(RuntimeError):
    """Base class: the run cannot go on; the message says what to do."""


class KnowledgeFileNotFound(SyntheticDataError):
    pass


class ApiKeyInvalid(SyntheticDataError):
    """Missing key, or the API answered 401/403: retrying cannot help."""


class RequestRejected(SyntheticDataError):
    """Another 4xx (bad model name, unsupported response_format): every request would fail alike."""


class ExistingOutputInvalid(SyntheticDataError):
    """--append onto a file with a broken line in the middle: appending would hide the damage."""
