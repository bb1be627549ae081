"""The offline corpus: English documentation of what is installed with the project.

A stand-in for FineWeb when there is no network: docstrings of the Python standard library and
of the project's installed dependencies, plus the Python language reference topics (pydoc_data)
and the long descriptions (READMEs) of the installed distributions. Source files are parsed with
`ast`, never imported, so building the corpus runs no third-party code and has no side effects.

Determinism: everything is visited in sorted order and the corpus stops at the first document
boundary past TARGET_BYTES, so the same installed versions always give the same documents
(the content hash in the manifest changes when installed versions change).
"""
from __future__ import annotations

import ast
import hashlib
import importlib.metadata as metadata
import inspect
import re
import sys
import sysconfig
from pathlib import Path
from typing import Iterator

from packaging.requirements import Requirement

# Above the 5 MB (and 5 MiB) the issue asks for; the stdlib alone gives ~2 MB, so the rest comes
# from the dependencies in name order. Stopping there keeps the build to a few seconds (parsing
# the whole dependency closure would give ~30 MB in about a minute).
TARGET_BYTES = 5_500_000
PROJECT_DISTRIBUTION = "nanochat-pipeline"
# Test suites, the IDE and example trees add little prose and a lot of parse time.
_SKIP_PARTS = {"test", "tests", "idlelib", "pydoc_data", "site-packages", "dist-packages", "__pycache__", "testing", "examples"}
_MIN_DOC_CHARS = 40  # one-line docstrings ("Return self.") are noise, not English text


def iter_embedded_documents(target_bytes: int = TARGET_BYTES) -> Iterator[str]:
    """Yield the corpus's documents in a fixed order until about `target_bytes` of UTF-8 text."""
    seen: set[bytes] = set()  # docstring digests: inherited/copied docstrings appear once
    total = 0
    for doc in _all_documents(seen):
        yield doc
        total += len(doc.encode("utf-8"))
        if total >= target_bytes:
            return


def describe_embedded(target_bytes: int = TARGET_BYTES) -> dict:
    """What the manifest records about this source (the content hash is added by the repackager)."""
    return {
        "kind": "embedded",
        "description": "docstrings and docs of the Python standard library and installed dependencies "
        "(an offline stand-in for FineWeb-Edu)",
        "python": sys.version.split()[0],
        "target_bytes": target_bytes,
    }


def _all_documents(seen: set[bytes]) -> Iterator[str]:
    yield from _language_reference(seen)  # pydoc_data's topics (skipped in the walk: one big dict, no docstrings)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.rglob("*.py")):
        rel = path.relative_to(stdlib)
        if not _SKIP_PARTS.intersection(rel.parts):
            yield from _module_documents(path, ".".join(rel.with_suffix("").parts), seen)
    dists = _dependency_closure(PROJECT_DISTRIBUTION)
    for name in sorted(dists):  # READMEs first: cheap and good prose
        text = _dedupe(_long_description(dists[name]), seen)
        if text:
            yield f"{name}\n\n{text}"
    for name in sorted(dists):
        dist = dists[name]
        for file in sorted(str(f) for f in (dist.files or []) if f.suffix == ".py"):
            rel = Path(file)
            if _SKIP_PARTS.intersection(rel.parts[:-1]):
                continue
            yield from _module_documents(Path(dist.locate_file(file)), ".".join(rel.with_suffix("").parts), seen)


def _module_documents(path: Path, module: str, seen: set[bytes]) -> Iterator[str]:
    """One document for the module docstring and one per top-level class or function."""
    try:
        source = path.read_bytes()
        if b'"""' not in source and b"'''" not in source:
            return  # no docstring possible: skip the parse, the bulk of the build time
        tree = ast.parse(source)
    except (SyntaxError, ValueError, OSError):
        return  # files for other Python versions or unreadable ones: not documentation we can use
    head = _dedupe(ast.get_docstring(tree), seen)
    if head:
        yield f"{module}\n\n{head}"
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            parts = [f"{name}\n\n{text}" for name, raw in _docstrings(node, f"{module}.{node.name}")
                     if (text := _dedupe(raw, seen))]
            if parts:
                yield "\n\n".join(parts)


def _docstrings(node: ast.AST, qualname: str) -> Iterator[tuple[str, str | None]]:
    yield qualname, ast.get_docstring(node)
    if isinstance(node, ast.ClassDef):
        for child in node.body:
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                yield from _docstrings(child, f"{qualname}.{child.name}")


def _language_reference(seen: set[bytes]) -> Iterator[str]:
    # pydoc's help topics are the Python language reference shipped with the interpreter.
    try:
        from pydoc_data.topics import topics
    except ImportError:
        return
    for key in sorted(topics):
        text = _dedupe(topics[key], seen)
        if text:
            yield text


def _dedupe(text: str | None, seen: set[bytes]) -> str | None:
    if not text:
        return None
    text = inspect.cleandoc(text).strip()
    if len(text) < _MIN_DOC_CHARS:
        return None
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
    if digest in seen:
        return None
    seen.add(digest)
    return text


def _long_description(dist: metadata.Distribution) -> str | None:
    meta = dist.metadata
    return meta.get_payload() or meta.get("Description")  # type: ignore[attr-defined]


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _dependency_closure(root: str) -> dict[str, metadata.Distribution]:
    """Installed distributions the project depends on (transitively, extras left out)."""
    found: dict[str, metadata.Distribution] = {}
    stack = [root]
    while stack:
        name = stack.pop()
        key = _normalize(name)
        if key in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional platform dependency that is not installed here
        if key != _normalize(root):  # our own code changes with every edit: not part of the corpus
            found[key] = dist
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                stack.append(req.name)
    return found


def embedded_source(target_bytes: int = TARGET_BYTES):
    from nanochat_core.data.sources import Source

    return Source(description=describe_embedded(target_bytes), documents=lambda: iter_embedded_documents(target_bytes))
