"""The API backend against a real HTTP server on 127.0.0.1 imitating chat completions."""
from __future__ import annotations

import json
import time

import pytest

from nanochat_core.synthetic import generate_conversations
from nanochat_core.synthetic.errors import ApiKeyInvalid, KnowledgeFileNotFound, RequestRejected
from nanochat_core.synthetic.knowledge import load_knowledge
from nanochat_core.synthetic.local_server import LocalChatServer
from nanochat_core.tasks.customjson import CustomJSON

KEY = "sk-test-key"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    # No real key and no stray .env may leak into these tests.
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(tmp_path / "base"))


def run(server, out, **kw):
    opts = dict(num=1, output=out, backend="api", workers=1, base_url=server.base_url, api_key=KEY, timeout=5.0,
                max_retries=5, backoff_base=0.001, show_progress=False, log=lambda m: None)
    opts.update(kw)
    return generate_conversations(**opts)


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_valid_answers_and_request_shape(tmp_path):
    out = tmp_path / "conv.jsonl"
    with LocalChatServer(api_key=KEY) as srv:
        stats = run(srv, out, num=6, workers=3, model="test/model-x", save_metadata=True)
    assert stats["written"] == 6 and stats["requests"] == 6 and stats["retries"] == 0 and stats["failed"] == 0
    rows = lines(out)
    assert sorted(r["metadata"]["index"] for r in rows) == list(range(6))
    assert all(r["metadata"]["model"] == "test/model-x" and r["metadata"]["attempts"] == 1 for r in rows)
    assert len(CustomJSON(out)) == 6
    titles = {t.title for t in load_knowledge().topics}
    for req in srv.requests:
        assert req["headers"]["authorization"] == f"Bearer {KEY}"
        body = req["body"]
        assert body["model"] == "test/model-x" and body["temperature"] == 1.0
        rf = body["response_format"]
        assert rf["type"] == "json_schema" and rf["json_schema"]["strict"] is True and rf["json_schema"]["name"]
        schema = rf["json_schema"]["schema"]
        assert schema["required"] == ["messages"] and schema["additionalProperties"] is False
        item = schema["properties"]["messages"]["items"]
        assert set(item["required"]) == {"role", "content"} and item["additionalProperties"] is False
        prompt = body["messages"][-1]["content"]
        assert "Knowledge base:" in prompt and any(f"Main topic: {t}" in prompt for t in titles)


@pytest.mark.parametrize("bad", ["malformed_json", "not_json_content", "schema_violation", "server_error"])
def test_bad_answers_are_retried(tmp_path, bad):
    out = tmp_path / "conv.jsonl"
    with LocalChatServer(script=[bad, bad]) as srv:
        stats = run(srv, out)
    assert (stats["written"], stats["requests"], stats["retries"]) == (1, 3, 2)
    assert len(CustomJSON(out)) == 1


def test_429_honours_retry_after(tmp_path):
    with LocalChatServer(script=["rate_limit"], retry_after="0.4") as srv:
        t0 = time.perf_counter()
        stats = run(srv, tmp_path / "c.jsonl")
        elapsed = time.perf_counter() - t0
    assert stats["written"] == 1 and stats["requests"] == 2
    assert elapsed >= 0.4  # the backoff alone (base 1 ms) would have retried at once


def test_timeout_is_retried(tmp_path):
    # the first answer would take 20 s: the client gives up on it at its 0.3 s timeout and asks again
    with LocalChatServer(script=["slow"], slow_seconds=20.0) as srv:
        t0 = time.perf_counter()
        stats = run(srv, tmp_path / "c.jsonl", timeout=0.3)
        elapsed = time.perf_counter() - t0
    assert stats["written"] == 1 and stats["requests"] == 2 and stats["retries"] == 1
    assert len(srv.requests) == 2
    assert elapsed < 10.0  # did not wait for the slow answer (a busy machine adds seconds, not twenty)


def test_gives_up_after_max_retries_and_goes_on(tmp_path):
    out = tmp_path / "c.jsonl"
    with LocalChatServer(default="server_error") as srv:
        stats = run(srv, out, num=2, max_retries=2)
    assert stats["failed"] == 2 and stats["failed_indices"] == [0, 1] and stats["written"] == 0
    assert len(srv.requests) == 6  # 1 try + 2 retries each
    assert out.read_text() == ""


def test_401_stops_the_whole_run_without_retries(tmp_path):
    with LocalChatServer(api_key="the-right-key") as srv:
        with pytest.raises(ApiKeyInvalid) as err:
            run(srv, tmp_path / "c.jsonl", num=20, workers=2)
    assert "API key invalid" in str(err.value) and "OPENROUTER_API_KEY" in str(err.value)
    assert len(srv.requests) <= 2  # at most one request per worker, never retried
    assert err.value.stats["written"] == 0


def test_other_4xx_stops_with_the_api_message(tmp_path):
    with LocalChatServer(default="bad_request") as srv:
        with pytest.raises(RequestRejected, match="response_format"):
            run(srv, tmp_path / "c.jsonl", num=3)
    assert len(srv.requests) == 1


def test_missing_key_stops_before_any_request(tmp_path):
    out = tmp_path / "c.jsonl"
    with LocalChatServer() as srv:
        with pytest.raises(ApiKeyInvalid, match="OPENROUTER_API_KEY is not set"):
            run(srv, out, api_key=None)
    assert srv.requests == [] and not out.exists()


def test_key_from_dotenv(tmp_path):
    (tmp_path / ".env").write_text("OPENROUTER_API_KEY=sk-from-dotenv\n")
    with LocalChatServer(api_key="sk-from-dotenv") as srv:
        stats = run(srv, tmp_path / "c.jsonl", api_key=None)
    assert stats["written"] == 1


def test_missing_knowledge_stops_before_any_request(tmp_path):
    out, missing = tmp_path / "c.jsonl", tmp_path / "nowhere" / "self_knowledge.md"
    with LocalChatServer() as srv:
        with pytest.raises(KnowledgeFileNotFound) as err:
            run(srv, out, knowledge=missing)
    assert f"Knowledge base file not found: {missing}" in str(err.value) and "Create it" in str(err.value)
    assert srv.requests == [] and not out.exists()


def test_choices_depend_on_seed_and_index_only(tmp_path):
    """Worker count and completion order never change which prompt conversation i gets."""
    metas = []
    for workers in (1, 4):
        out = tmp_path / f"w{workers}.jsonl"
        with LocalChatServer(latency=0.01) as srv:
            run(srv, out, num=8, workers=workers, save_metadata=True, seed=7)
        metas.append({r["metadata"]["index"]: {k: v for k, v in r["metadata"].items() if k != "attempts"}
                      for r in lines(out)})
    assert metas[0] == metas[1]
