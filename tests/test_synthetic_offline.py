"""The offline backend (deterministic, no network), the CLI, and the knowledge file."""
from __future__ import annotations

import json

from nanochat_core.cli.gen_synthetic_data import build_parser, main
from nanochat_core.synthetic import DEFAULT_KNOWLEDGE, generate_conversations
from nanochat_core.synthetic.knowledge import load_knowledge
from nanochat_core.tasks.customjson import CustomJSON


def offline(out, num=60, **kw):
    return generate_conversations(num, out, "offline", show_progress=False, **kw)


def test_offline_is_deterministic(tmp_path):
    a, b, c, d = (tmp_path / f"{x}.jsonl" for x in "abcd")
    offline(a, save_metadata=True)
    offline(b, save_metadata=True, workers=8)
    offline(c, save_metadata=True, seed=1)
    offline(d, num=30, save_metadata=True)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert a.read_text().splitlines()[:30] == d.read_text().splitlines()  # a prefix of a longer run


def test_offline_conversations_are_valid_diverse_and_grounded(tmp_path):
    out = tmp_path / "o.jsonl"
    offline(out, num=200, save_metadata=True)
    assert len(CustomJSON(out)) == 200
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    meta = [r["metadata"] for r in rows]
    kb = load_knowledge()
    for key, at_least in (("topic", len(kb.topics)), ("persona", 8), ("dynamics", 6), ("first_message_style", 6)):
        assert len({m[key] for m in meta}) >= at_least, key
    assert len({r["messages"][0]["content"] for r in rows}) > 100  # not a handful of templates
    facts = [f for t in kb.topics for f in t.facts]
    for r in rows:  # every conversation quotes the knowledge base somewhere
        assert any(f in m["content"] for m in r["messages"] if m["role"] == "assistant" for f in facts)


def test_plain_lines_without_metadata(tmp_path):
    out = tmp_path / "o.jsonl"
    offline(out, num=3)
    assert all(set(json.loads(x)) == {"messages"} for x in out.read_text().splitlines())


def test_own_knowledge_file(tmp_path):
    kb = tmp_path / "kb.md"
    kb.write_text("# Me\n\n## Name\n- I am Zed, a tiny model.\n- Zed likes tea.\n\n## Maker\n- Ada made me.\n")
    out = tmp_path / "o.jsonl"
    offline(out, num=20, knowledge=kb, save_metadata=True)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert {r["metadata"]["topic"] for r in rows} == {"Name", "Maker"}
    assert len(CustomJSON(out)) == 20


def test_packaged_knowledge_describes_this_project():
    text = DEFAULT_KNOWLEDGE.read_text()
    for needle in ("nanochat", "Dagster", "depth", "MIT", "karpathy/nanochat", "limitations", "gen_synthetic_data"):
        assert needle in text


def test_cli_offline_and_defaults(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(tmp_path))
    assert main(["--backend", "offline", "--num", "5"]) == 0
    assert len(CustomJSON(tmp_path / "identity_conversations.jsonl")) == 5
    args = build_parser().parse_args([])
    assert (args.num, args.workers, args.timeout, args.max_retries, args.backend) == (1000, 4, 60.0, 5, "api")
    assert args.base_url == "https://openrouter.ai/api/v1" and not args.append and not args.save_metadata


def test_cli_reports_missing_knowledge(tmp_path, capsys):
    missing = tmp_path / "none.md"
    assert main(["--backend", "offline", "--num", "2", "--output", str(tmp_path / "o.jsonl"),
                 "--knowledge", str(missing)]) == 1
    assert f"Knowledge base file not found: {missing}" in capsys.readouterr().err
