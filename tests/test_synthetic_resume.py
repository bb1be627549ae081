"""Interrupting a run and continuing it with append: valid files, no duplicates, no gaps."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from nanochat_core.synthetic import generate_conversations
from nanochat_core.synthetic.errors import ExistingOutputInvalid
from nanochat_core.synthetic.local_server import LocalChatServer
from nanochat_core.synthetic.output import progress_path
from nanochat_core.tasks.customjson import CustomJSON


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)


def api_run(srv, out, **kw):
    opts = dict(num=12, output=out, backend="api", workers=3, base_url=srv.base_url, api_key="k", timeout=5.0,
                backoff_base=0.001, show_progress=False, log=lambda m: None)
    opts.update(kw)
    return generate_conversations(**opts)


def sidecar_indices(out, seed=42):
    entries = [json.loads(x) for x in progress_path(out).read_text().splitlines()]
    return Counter(e["index"] for e in entries if e["seed"] == seed)


def test_interrupted_api_run_continues_without_duplicates(tmp_path):
    out = tmp_path / "conv.jsonl"
    stop = threading.Event()

    def stop_after_four(done, total):
        if done >= 4:
            stop.set()

    with LocalChatServer(latency=0.02) as srv:
        first = api_run(srv, out, stop_event=stop, on_progress=stop_after_four)
        assert first["interrupted"] and 4 <= first["written"] < 12
        assert len(CustomJSON(out)) == first["written"]  # what was written is valid
        with open(out, "a") as f:  # and a crash mid-write leaves a partial line behind
            f.write('{"messages": [{"role": "us')
        n_before = len(srv.requests)
        second = api_run(srv, out, append=True)
        assert second["repaired_partial_line"] and second["already_done"] == first["written"]
        assert second["written"] == 12 - first["written"] and not second["interrupted"]
        assert len(srv.requests) - n_before == second["written"]  # nothing asked twice
        third = api_run(srv, out, append=True)
    assert third["written"] == 0 and third["requests"] == 0
    assert len(CustomJSON(out)) == 12
    counts = sidecar_indices(out)
    assert sorted(counts) == list(range(12)) and set(counts.values()) == {1}


def test_metadata_alone_is_enough_to_resume(tmp_path):
    out = tmp_path / "conv.jsonl"
    generate_conversations(5, out, "offline", save_metadata=True, show_progress=False)
    progress_path(out).unlink()
    stats = generate_conversations(8, out, "offline", save_metadata=True, append=True, show_progress=False)
    assert stats["already_done"] == 5 and stats["written"] == 3
    indices = [json.loads(x)["metadata"]["index"] for x in out.read_text().splitlines()]
    assert sorted(indices) == list(range(8))


def test_lines_removed_by_hand_are_regenerated(tmp_path):
    out = tmp_path / "conv.jsonl"
    generate_conversations(6, out, "offline", show_progress=False)
    kept = out.read_text().splitlines()[:4]
    out.write_text("\n".join(kept) + "\n")
    stats = generate_conversations(6, out, "offline", append=True, show_progress=False)
    assert stats["written"] == 2 and len(CustomJSON(out)) == 6


def test_other_seed_appends_new_conversations(tmp_path):
    out = tmp_path / "conv.jsonl"
    generate_conversations(4, out, "offline", show_progress=False)
    stats = generate_conversations(4, out, "offline", seed=43, append=True, show_progress=False)
    assert stats["written"] == 4 and len(CustomJSON(out)) == 8


def test_without_append_the_file_is_replaced(tmp_path):
    out = tmp_path / "conv.jsonl"
    generate_conversations(6, out, "offline", show_progress=False)
    generate_conversations(2, out, "offline", show_progress=False)
    assert len(CustomJSON(out)) == 2 and sum(sidecar_indices(out).values()) == 2


def test_append_keeps_a_data_set_with_extra_keys_and_warns_once(tmp_path):
    out = tmp_path / "conv.jsonl"
    generate_conversations(3, out, "offline", show_progress=False)
    lines = [dict(json.loads(x), lang="en", message_tree_id=f"t{i}") for i, x in enumerate(out.read_text().splitlines())]
    out.write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.warns(UserWarning) as caught:
        stats = generate_conversations(5, out, "offline", append=True, show_progress=False)
    assert stats["written"] == 5 and len(out.read_text().splitlines()) == 8  # the 3 edited lines are kept
    ours = [w for w in caught if "ignored top-level key" in str(w.message)]
    assert len(ours) == 1 and "['lang', 'message_tree_id'] on 3 line(s)" in str(ours[0].message)


def test_append_refuses_a_broken_line(tmp_path):
    out = tmp_path / "conv.jsonl"
    generate_conversations(3, out, "offline", show_progress=False)
    rows = out.read_text().splitlines()
    rows[1] = '{"text": "not a conversation"}'
    out.write_text("\n".join(rows) + "\n")
    with pytest.raises(ExistingOutputInvalid, match=rf"{out}:2:"):
        generate_conversations(5, out, "offline", append=True, show_progress=False)


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT")
def test_ctrl_c_stops_the_cli_cleanly(tmp_path):
    """The real signal path: first Ctrl-C stops, exit 130, file valid; --append then finishes."""
    out = tmp_path / "conv.jsonl"
    env = {**os.environ, "OPENROUTER_API_KEY": "k", "NANOCHAT_BASE_DIR": str(tmp_path)}
    with LocalChatServer(latency=0.05) as srv:
        cmd = [sys.executable, "-m", "nanochat_core.cli.gen_synthetic_data", "--num", "150",
               "--output", str(out), "--base-url", srv.base_url]
        proc = subprocess.Popen(cmd + ["--workers", "2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        deadline = time.time() + 20
        while time.time() < deadline and (not out.exists() or out.read_text().count("\n") < 3):
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 130, err
        assert "--append" in err
        n = len(CustomJSON(out))
        assert 3 <= n < 150
        done = subprocess.run(cmd + ["--append", "--workers", "8"], env=env, capture_output=True, text=True,
                              timeout=30)
    assert done.returncode == 0, done.stderr
    assert len(CustomJSON(out)) == 150
    assert sorted(sidecar_indices(out)) == list(range(150))
