"""--upload-repo: local checks before any network call, then the first Hub calls against a recorder.

huggingface_hub 2.x uploads through Xet storage (a separate content-addressed protocol), which
is not reasonably servable in a test; so the recorder on 127.0.0.1 accepts repo creation,
records the upload's first request and refuses it, and the test checks what was asked for.
"""
from __future__ import annotations

import http.server
import json
import threading

import pytest

from nanochat_core.cli import repackage_data
from nanochat_core.data.shards import repackage
from nanochat_core.data.sources import Source
from nanochat_core.data.upload import UploadError, upload_shards


class Recorder(http.server.ThreadingHTTPServer):
    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict] = []

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def hub_requests(self):  # leave out huggingface_hub's own client bookkeeping calls
        return [r for r in self.requests if "agent-harnesses" not in r["path"]]


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.requests.append({"method": self.command, "path": self.path,
                                     "auth": self.headers.get("Authorization"), "body": body})
        if self.command == "POST" and self.path == "/api/repos/create":
            name = json.loads(body)
            payload = {"url": f"{self.server.url}/datasets/{name.get('organization')}/{name['name']}"}
            status = 200
        else:
            payload, status = {"error": "recorder: refused"}, 403
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_HEAD = _handle


@pytest.fixture
def recorder(monkeypatch):
    server = Recorder()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def shard_dir(tmp_path):
    docs = [f"doc {i} " * 20 for i in range(50)]
    out = tmp_path / "base_data"
    repackage(Source({"kind": "test"}, lambda: iter(docs)), out, row_group_size=8, progress=False, log=lambda s: None)
    return out


def test_refuses_without_hf_token_before_any_network_call(recorder, shard_dir, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(UploadError, match="HF_TOKEN is not set"):
        upload_shards(shard_dir, "me/my-shards")
    assert recorder.requests == []


def test_checks_repo_name_and_manifest_locally(recorder, shard_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    with pytest.raises(UploadError, match="OWNER/NAME"):
        upload_shards(shard_dir, "no-owner")
    with pytest.raises(UploadError, match="no manifest.json"):
        upload_shards(tmp_path, "me/my-shards")
    assert recorder.requests == []


def test_first_calls_create_the_dataset_repo_then_upload(recorder, shard_dir, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    with pytest.raises(UploadError, match=r"to dataset me/my-shards failed"):
        upload_shards(shard_dir, "me/my-shards", private=True)
    calls = recorder.hub_requests()
    create = calls[0]
    assert (create["method"], create["path"], create["auth"]) == ("POST", "/api/repos/create", "Bearer hf_test")
    body = json.loads(create["body"])
    assert (body["name"], body["organization"], body["type"]) == ("my-shards", "me", "dataset")
    assert body.get("private") is True or body.get("visibility") == "private"  # huggingface_hub <2 / >=2 spelling
    # The next request already addresses the dataset repo (the upload itself), with the token.
    assert len(calls) >= 2 and "/datasets/me/my-shards" in calls[1]["path"] and calls[1]["auth"] == "Bearer hf_test"


def test_cli_refuses_upload_without_token_before_repackaging(recorder, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here to supply a token
    out = tmp_path / "never"
    rc = repackage_data.main(["--source", "local", "--input", "x.jsonl", "--output-dir", str(out),
                              "--upload-repo", "me/my-shards", "--no-progress"])
    assert rc == 1 and "HF_TOKEN is not set" in capsys.readouterr().err
    assert not out.exists() and recorder.requests == []
