"""CORE evaluation: tiny bundles written here, scored by a bigram stub whose winners are known in advance,
plus the bundle download from a local HTTP server and base_train/base_eval end to end."""
from __future__ import annotations

import csv
import hashlib
import http.server
import json
import random
import re
import types
from pathlib import Path

import pytest
import torch
import yaml

from helpers import serving_http, zipped_folder
from nanochat_core.evaluation import core_bundle
from nanochat_core.evaluation.core import evaluate_model, format_core, write_results
from nanochat_core.evaluation.core_scoring import crop_example
from nanochat_core.evaluation.core_tasks import build_example, load_rows, load_tasks, render_prompts

BOS = 256
VOCAB = 300


class CharTokenizer:
    """One token per ASCII character, BOS = 256: spans and crops are easy to reason about."""

    def get_bos_token_id(self):
        return BOS

    def encode(self, text, prepend=None):
        pre = [] if prepend is None else [prepend]
        if isinstance(text, list):
            return [self.encode(t, prepend) for t in text]
        return pre + [ord(c) for c in text]


class BigramStub(torch.nn.Module):
    """GPT's forward / hidden_states / logits interface; the logits at a position depend only on its token, through a table:
    ' ' -> 'g', 'g' -> 'g' (and, less, ' '), 'q' -> ' '. So 'g' answers win, 'b' answers lose."""

    def __init__(self, sequence_len=256):
        super().__init__()
        self.config = types.SimpleNamespace(sequence_len=sequence_len)
        table = torch.zeros(VOCAB, VOCAB)
        table[ord(" "), ord("g")] = 10.0
        table[ord("g"), ord("g")] = 12.0
        table[ord("g"), ord(" ")] = 10.0
        table[ord("q"), ord(" ")] = 10.0
        self.register_buffer("table", table)
        self.batch_rows = []

    def forward(self, idx, targets=None, kv_cache=None, loss_reduction="mean"):
        return self.logits(self.hidden_states(idx))

    def hidden_states(self, idx, kv_cache=None):  # the token itself is all the "state" a bigram needs
        self.batch_rows.append(idx.size(0))
        return idx

    def logits(self, h):
        return self.table[h]


MC_ROWS = [{"query": f"Q{i}?", "choices": ["gg", "bb"], "gold": 0} for i in range(3)] + \
          [{"query": "Q3?", "choices": ["gg", "bb"], "gold": 1}]  # 3 of 4 right
SCHEMA_ROWS = [{"context_options": ["it is g", "it is b"], "continuation": "end", "gold": 0},
               {"context_options": ["it is g", "it is b"], "continuation": "end", "gold": 1}]  # 1 of 2
LM_ROWS = [{"context": f"say {i} q ", "continuation": "gg", "category": "x"} for i in range(4)] + \
          [{"context": "say q", "continuation": "bb"}]  # 4 of 5
TASKS = [("mc", "mc/mc.jsonl", "multiple_choice", 1, 25.0, MC_ROWS),
         ("schema", "schema/schema.jsonl", "schema", 1, 50.0, SCHEMA_ROWS),
         ("lm", "lm/lm.jsonl", "language_modeling", 2, 0.0, LM_ROWS)]


def write_bundle(root: Path, tasks=TASKS, skip_data=()) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    entries = [{"label": label, "dataset_uri": uri, "num_fewshot": [k], "icl_task_type": kind}
               for label, uri, kind, k, _, _ in tasks]
    (root / "core.yaml").write_text(yaml.safe_dump({"icl_tasks": entries}))
    lines = ["Eval Task,Task Category,Random baseline"] + [f"{t[0]},cat,{t[4]}" for t in tasks]
    (root / "eval_meta_data.csv").write_text("\n".join(lines) + "\n")
    for label, uri, _, _, _, rows in tasks:
        if label in skip_data:
            continue
        path = root / "eval_data" / uri
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_all_three_task_types_scored_exactly_and_batched(tmp_path):
    model = BigramStub()
    result = evaluate_model(model, CharTokenizer(), "cpu", bundle_dir=write_bundle(tmp_path / "b"), batch_size=4,
                            log=lambda *a: None)
    t = result["tasks"]
    assert t["mc"]["accuracy"] == 0.75 and t["mc"]["centered"] == pytest.approx((0.75 - 0.25) / 0.75)
    assert t["schema"]["accuracy"] == 0.5 and t["schema"]["centered"] == pytest.approx(0.0)
    assert t["lm"]["accuracy"] == 0.8 and t["lm"]["centered"] == pytest.approx(0.8)
    assert result["core_metric"] == pytest.approx((2 / 3 + 0.0 + 0.8) / 3)
    assert not result["partial"] and result["skipped"] == [] and result["cropped_prompts"] == 0
    # 8 + 4 + 5 prompt rows in ceil(8/4) + 1 + 2 passes of at most 4 rows, several examples per pass
    assert model.batch_rows == [4, 4, 4, 4, 1]

    csv_path, json_path = write_results(result, tmp_path / "base_eval", "d2", 7)
    assert csv_path.name == "d2_000007.csv" and json_path.name == "d2_000007.json"
    rows = list(csv.reader(csv_path.open()))
    assert rows[0] == ["Task", "Accuracy", "Centered"] and [r[0] for r in rows[1:]] == ["mc", "schema", "lm", "CORE"]
    assert float(rows[1][1]) == 0.75 and rows[-1][1] == "" and float(rows[-1][2]) == pytest.approx(result["core_metric"])
    data = json.loads(json_path.read_text())
    assert data["core"] == result["core_metric"] and data["partial"] is False and data["cropped_prompts"] == 0


def test_missing_data_file_is_skipped_and_marks_core_partial(tmp_path):
    from nanochat_core.common import settings
    from nanochat_core.report.sources import base_eval_section

    logged = []
    result = evaluate_model(BigramStub(), CharTokenizer(), "cpu", bundle_dir=write_bundle(tmp_path / "b", skip_data={"schema"}),
                            log=logged.append)
    assert result["partial"] and result["skipped"] == ["schema"]
    assert "schema.jsonl is missing" in result["tasks"]["schema"]["reason"]
    assert result["core_metric"] == pytest.approx((2 / 3 + 0.8) / 2)  # the mean of what ran, flagged partial
    assert logged[-1] == f"CORE metric: {result['core_metric']:.4f} (partial: 1 of 3 tasks skipped: schema)"
    write_results(result, settings.base_eval_dir(tmp_path), "d2", 3)
    rows = list(csv.reader((tmp_path / "base_eval" / "d2_000003.csv").open()))
    assert rows[2] == ["schema", "", ""] and rows[-1][0] == "CORE"  # nanochat's row name; partial is in the JSON
    section = base_eval_section("d2", 3, root=tmp_path)  # the report card reads the JSON twin
    assert section["partial"] and "is missing" in section["skipped"]["schema"] and section["core"] == pytest.approx(
        result["core_metric"])


def test_overlong_prompts_are_cropped_from_the_left_and_counted(tmp_path):
    long_rows = [{"context": "a" * 200 + " q", "continuation": "gg"}, {"context": "say q", "continuation": "gg"}]
    bundle = write_bundle(tmp_path / "b", tasks=[("lm", "lm.jsonl", "language_modeling", 0, 0.0, long_rows)])
    logged = []
    result = evaluate_model(BigramStub(), CharTokenizer(), "cpu", bundle_dir=bundle, context=32, log=logged.append)
    assert result["cropped_prompts"] == 1 and result["tasks"]["lm"]["accuracy"] == 1.0  # the span survived
    assert "CORE: 1 prompt(s) cropped from the left to the 32-token context; 0 example(s) left out" in logged[-2]

    spec = load_tasks(bundle)[0]
    rows = load_rows(spec.data_path, -1)
    idx = next(i for i, r in enumerate(rows) if len(r["context"]) > 100)
    ex = build_example(spec, rows, idx, CharTokenizer())
    (row,) = crop_example(ex, 32)
    assert len(row.tokens) == 32 and row.tokens[0] == BOS and row.cropped
    assert row.tokens[row.start:row.end] == ex.prompts[0][ex.starts[0]:ex.ends[0]] == [ord(c) for c in " gg"]
    assert crop_example(ex, 3) is None  # span (3 tokens) plus the token predicting it does not fit

    too_long = [{"context": "say q", "continuation": "g" * 40}]
    bundle = write_bundle(tmp_path / "c", tasks=[("lm", "lm.jsonl", "language_modeling", 0, 0.0, too_long)])
    result = evaluate_model(BigramStub(), CharTokenizer(), "cpu", bundle_dir=bundle, context=32, log=lambda *a: None)
    task = result["tasks"]["lm"]
    assert result["unscorable_examples"] == 1 and task["skipped"] and task["unscorable_examples"] == 1 and "does not fit the 32-token context" in task["reason"]
    assert result["partial"] and result["core_metric"] is None and format_core(result).startswith("n/a")


def test_subsampling_and_fewshot_follow_the_formulas(tmp_path):
    rows = [{"query": f"q{i}", "choices": [f"a{i}", f"b{i}"], "gold": i % 2} for i in range(10)]
    bundle = write_bundle(tmp_path / "b", tasks=[("mc", "mc.jsonl", "multiple_choice", 3, 50.0, rows)])
    spec = load_tasks(bundle)[0]
    expected = list(rows)
    random.Random(1337).shuffle(expected)
    assert load_rows(spec.data_path, -1) == expected and load_rows(spec.data_path, 4) == expected[:4]
    loaded = load_rows(spec.data_path, -1)
    for idx in (0, 5):
        shots = random.Random(1234 + idx).sample([i for i in range(10) if i != idx], 3)
        prefix = "".join(f"{loaded[i]['query']} {loaded[i]['choices'][loaded[i]['gold']]}\n" for i in shots)
        item = loaded[idx]
        assert render_prompts(spec, loaded, idx) == ([prefix + f"{item['query']} {c}" for c in item["choices"]],
                                                     item["gold"])
    assert render_prompts(spec, loaded, 5) == render_prompts(spec, load_rows(spec.data_path, -1), 5)


def test_bad_config_and_rows_name_the_file_and_entry(tmp_path):
    bundle = write_bundle(tmp_path / "b")
    config = yaml.safe_load((bundle / "core.yaml").read_text())
    del config["icl_tasks"][1]["dataset_uri"]
    (bundle / "core.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match=r"core\.yaml: icl_tasks entry 1 \('schema'\): missing key\(s\) dataset_uri"):
        load_tasks(bundle)
    config["icl_tasks"][1].update(dataset_uri="x.jsonl", icl_task_type="cloze")
    (bundle / "core.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match=r"entry 1 \('schema'\): unknown icl_task_type 'cloze'"):
        load_tasks(bundle)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "a"}\n{"query": oops}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl: line 2 is not valid JSON"):
        load_rows(bad, -1)


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves one payload, honouring `Range: bytes=N-` as S3 does; records the Range headers it saw."""
    payload = b""
    ranges: list = []

    def do_GET(self):
        rng = self.headers.get("Range")
        type(self).ranges.append(rng)
        start = int(re.match(r"bytes=(\d+)-", rng).group(1)) if rng else 0
        body = self.payload[start:]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def bundle_server(tmp_path, monkeypatch):
    RangeHandler.payload, RangeHandler.ranges = zipped_folder(write_bundle(tmp_path / "src"), "eval_bundle"), []
    with serving_http(http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)) as url:
        monkeypatch.setenv(core_bundle.URL_ENV, f"{url}/eval_bundle.zip")
        yield RangeHandler


def test_download_resumes_records_sha256_and_extracts_atomically(tmp_path, bundle_server):
    target = tmp_path / "base" / "eval_bundle"
    target.parent.mkdir()
    payload = bundle_server.payload
    (target.parent / "eval_bundle.zip.part").write_bytes(payload[:100])  # an interrupted earlier download
    assert core_bundle.ensure_bundle(target) == target
    assert bundle_server.ranges == ["bytes=100-"]
    assert (target / "core.yaml").is_file() and (target / "eval_data" / "lm" / "lm.jsonl").is_file()
    assert (target.parent / "eval_bundle.zip").read_bytes() == payload
    record = json.loads((target.parent / "eval_bundle.zip.json").read_text())
    assert record["sha256"] == hashlib.sha256(payload).hexdigest() and record["bytes"] == len(payload)
    assert sorted(p.name for p in target.parent.iterdir()) == ["eval_bundle", "eval_bundle.zip", "eval_bundle.zip.json"]
    assert core_bundle.ensure_bundle(target) == target and len(bundle_server.ranges) == 1  # present: no fetch

    fresh = tmp_path / "fresh" / "eval_bundle"
    core_bundle.ensure_bundle(fresh)
    assert bundle_server.ranges[-1] is None and (fresh / "core.yaml").is_file()


def test_failed_extraction_leaves_no_bundle(tmp_path):
    target = tmp_path / "eval_bundle"
    (tmp_path / "eval_bundle.zip").write_bytes(b"not a zip")
    with pytest.raises(RuntimeError, match="is not a valid zip"):
        core_bundle.ensure_bundle(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval_bundle.zip"]


TEXT_TASKS = [  # words from the training fixtures' corpus, so the real tokenizer handles them
    ("hellaswag", "lm/hs.jsonl", "multiple_choice", 1, 25.0,
     [{"query": "The cat sees", "choices": ["a red ball in the park.", "the green door at home."], "gold": i % 2}
      for i in range(4)]),
    ("winograd", "wg.jsonl", "schema", 0, 50.0,
     [{"context_options": ["The dog likes", "The farmer likes"], "continuation": "the warm bread.", "gold": i % 2}
      for i in range(3)]),
    ("lambada", "lambada.jsonl", "language_modeling", 0, 0.0,
     [{"context": "my friend helps the child near the", "continuation": "river."} for _ in range(3)]),
]


def test_base_train_and_base_eval_core_end_to_end(tmp_path, monkeypatch, capsys):
    from nanochat_core.cli import base_eval, base_train
    from train_fixtures import TINY_FLAGS, build_base

    root = build_base(tmp_path / "base")
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(root))
    monkeypatch.setenv(core_bundle.URL_ENV, "http://127.0.0.1:1/eval_bundle.zip")  # nothing listens there
    assert base_train.main(TINY_FLAGS + ["--num-iterations", "2", "--core-metric-every", "2"]) == 1
    err = capsys.readouterr().err
    assert "downloading the eval bundle from http://127.0.0.1:1/" in err and "--core-metric-every -1" in err
    assert not (root / "base_checkpoints").exists()  # refused before training, not at the first CORE step
    write_bundle(root / "eval_bundle", tasks=TEXT_TASKS)  # base_train's periodic CORE reads the default folder
    rc = base_train.main(TINY_FLAGS + ["--num-iterations", "2", "--eval-every", "-1", "--core-metric-every", "2",
                                       "--core-metric-max-per-task", "2"])
    out = capsys.readouterr().out
    assert rc == 0 and re.search(r"^Step 00002 \| CORE metric: -?\d+\.\d{4}$", out, re.M)
    meta_file = root / "base_checkpoints" / "d2" / "meta_000002.json"
    trained_core = json.loads(meta_file.read_text())["core_score"]
    assert isinstance(trained_core, float)
    # base_eval on the same checkpoint, bundle, examples and batch size scores exactly what training recorded
    assert base_eval.main(["--eval", "core", "--max-per-task", "2", "--device-batch-size", "4",
                           "--device-type", "cpu"]) == 0
    capsys.readouterr()
    assert json.loads((root / "base_eval" / "d2_000002.json").read_text())["core"] == trained_core

    other = write_bundle(tmp_path / "other", tasks=TEXT_TASKS, skip_data={"winograd"})
    rc = base_eval.main(["--eval", "core", "--bundle-dir", str(other), "--device-batch-size", "3",
                         "--device-type", "cpu"])
    out = capsys.readouterr().out
    assert rc == 0 and "winograd: skipped" in out and "(partial: 1 of 3 tasks skipped: winograd)" in out
    data = json.loads((root / "base_eval" / "d2_000002.json").read_text())
    assert data["partial"] and data["skipped"] == ["winograd"] and set(data["tasks"]) == {"hellaswag", "winograd",
                                                                                          "lambada"}
    assert data["tasks"]["hellaswag"]["examples"] == 4 and data["tasks"]["lambada"]["examples"] == 3
    lines = (root / "base_eval" / "d2_000002.csv").read_text().splitlines()
    assert lines[0] == "Task,Accuracy,Centered" and lines[2] == "winograd,," and lines[-1].startswith("CORE,,")
    meta = json.loads(meta_file.read_text())
    assert meta["core_score"] == data["core"] and meta["core_partial"] is True


def test_batched_scoring_matches_one_row_at_a_time_on_a_real_gpt():
    from nanochat_core.evaluation.core_scoring import Row, score_rows
    from nanochat_core.model.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(sequence_len=64, vocab_size=300, n_layer=2, n_head=2, n_kv_head=2, n_embd=64))
    model.init_weights()
    torch.nn.init.normal_(model.lm_head.weight, std=0.5)  # non-trivial logits
    model.eval()
    gen = random.Random(0)
    rows = []
    for n in (5, 17, 9, 40, 12, 3):
        tokens = [BOS] + [gen.randrange(256) for _ in range(n - 1)]
        rows.append(Row(tokens, max(1, n - 4), n, False))
    batched = score_rows(model, rows, BOS, "cpu", batch_size=4)
    single = [score_rows(model, [r], BOS, "cpu", batch_size=1)[0] for r in rows]
    assert [e for _, e in batched] == [e for _, e in single]
    assert [loss for loss, _ in batched] == pytest.approx([loss for loss, _ in single], rel=1e-5)
