"""A fake Hugging Face Hub on 127.0.0.1: the two endpoints huggingface_hub uses here.

`GET /api/datasets/<repo>/tree/<revision>/<folder>` (list_repo_tree) and
`HEAD|GET /datasets/<repo>/resolve/<revision>/<path>` (hf_hub_download). Files are given as
{repo: {path: bytes}}; every request is recorded as (method, path, Authorization header).
"""
from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import urllib.parse

from helpers import serving_http

MAIN = "main"


class FakeHub(http.server.ThreadingHTTPServer):
    def __init__(self, repos: dict[str, dict[str, bytes]], revision: str = MAIN):
        super().__init__(("127.0.0.1", 0), _HubHandler)
        self.repos, self.revision, self.requests = repos, revision, []

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def known_revision(self, rev: str) -> bool:
        return rev in (self.revision, MAIN)


def _split(path: str, marker: str) -> tuple[str, str, str] | None:
    """'/<prefix><repo>/<marker>/<rev>/<rest>' -> (repo, rev, rest)."""
    if marker not in path:
        return None
    repo, tail = path.split(marker, 1)
    rev, _, rest = tail.partition("/")
    return repo, rev, rest


class _HubHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _record(self):
        self.server.requests.append((self.command, self.path, self.headers.get("Authorization")))

    def do_GET(self):
        self._record()
        path = urllib.parse.unquote(self.path.split("?")[0])
        if path.startswith("/api/datasets/"):
            return self._tree(path[len("/api/datasets/"):])
        self._resolve(head=False)

    def do_HEAD(self):
        self._record()
        self._resolve(head=True)

    def _tree(self, rest: str):
        parts = _split(rest, "/tree/")
        hub = self.server
        if parts is None or parts[0] not in hub.repos or not hub.known_revision(parts[1]):
            return self._send(404, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"})
        repo, _, folder = parts
        entries = [{"type": "file", "path": p, "size": len(d), "oid": hashlib.sha1(d).hexdigest()}
                   for p, d in hub.repos[repo].items() if p.startswith(folder.rstrip("/") + "/")]
        entries.append({"type": "directory", "path": f"{folder}/subdir", "oid": "0"})
        self._send(200, json.dumps(entries).encode(), {"Content-Type": "application/json"})

    def _resolve(self, head):
        path = urllib.parse.unquote(self.path.split("?")[0])
        parts = _split(path[len("/datasets/"):], "/resolve/") if path.startswith("/datasets/") else None
        hub = self.server
        data = None
        if parts and hub.known_revision(parts[1]):
            data = hub.repos.get(parts[0], {}).get(parts[2])
        if data is None:
            return self._send(404, b'{"error": "Entry not found"}', {"X-Error-Code": "EntryNotFound"}, head)
        headers = {"X-Repo-Commit": hub.revision if hub.revision != MAIN else "0" * 40,
                   "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}
        self._send(200, data, headers, head)

    def _send(self, status, body, headers, head=False):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)


@contextlib.contextmanager
def serving(monkeypatch, repos: dict[str, dict[str, bytes]], revision: str = MAIN, token: str = "hf_test_token"):
    """Start a FakeHub and point HF_ENDPOINT / HF_TOKEN at it for the test."""
    hub = FakeHub(repos, revision)
    with serving_http(hub):
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", token)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        yield hub
