"""Repackaging: shard layout, shuffle determinism, split rules and bad input."""
from __future__ import annotations

import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nanochat_core.cli import repackage_data
from nanochat_core.data import shuffle
from nanochat_core.data.parquet_files import iter_shard_texts, list_parquet_files, split_files
from nanochat_core.data.shards import RepackageError, repackage
from nanochat_core.data.sources import Source, SourceError, local_source


def make_docs(n: int, length: int = 200) -> list[str]:
    # Distinct documents of varied length, so order and character counts are checkable.
    return [f"document {i:05d} " + "lorem ipsum " * ((i * 7919) % length // 12 + 1) for i in range(n)]


def list_source(docs: list[str]) -> Source:
    return Source(description={"kind": "test"}, documents=lambda: iter(docs))


def read_all(files) -> list[str]:
    return [t for f in files for t in pq.read_table(f).column("text").to_pylist()]


def run(docs, out, logs=None, **kw):
    return repackage(list_source(docs), out, progress=False, log=(logs.append if logs is not None else lambda s: None), **kw)


def test_shard_layout_row_groups_zstd_one_column(tmp_base_dir):
    out = tmp_base_dir / "base_data"
    docs = make_docs(3000)
    manifest = run(docs, out, chars_per_shard=20_000, row_group_size=100)
    files = list_parquet_files()  # default folder: $NANOCHAT_BASE_DIR/base_data
    assert [f.name for f in files] == [f"shard_{i:05d}.parquet" for i in range(len(files))]
    assert len(files) >= 10
    for f in files:
        meta = pq.ParquetFile(f).metadata
        assert pq.ParquetFile(f).schema_arrow == pa.schema([("text", pa.string())])
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        assert all(s == 100 for s in sizes[:-1]) and 0 < sizes[-1] <= 100
        for i in range(meta.num_row_groups):
            assert meta.row_group(i).column(0).compression == "ZSTD"
    # Every document exactly once; the manifest agrees with the files.
    assert sorted(read_all(files)) == sorted(docs)
    assert manifest["documents"] == 3000 and manifest["characters"] == sum(map(len, docs))
    assert [s["name"] for s in manifest["shards"]] == [f.name for f in files]
    assert [s["split"] for s in manifest["shards"]] == ["train"] * (len(files) - 1) + ["val"]
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert split_files("val") == files[-1:] and split_files("train") == files[:-1]
    assert list(iter_shard_texts("val")) == read_all(files[-1:])


def test_large_corpus_cuts_shards_at_row_groups_after_target_chars(tmp_path):
    docs = make_docs(3000)
    manifest = run(docs, tmp_path / "d", chars_per_shard=20_000, row_group_size=100)
    assert manifest["settings"]["layout"] == "standard"
    train = manifest["shards"][:-1]
    for s in train:  # a shard closes at the first row-group boundary with >= target chars
        assert s["rows"] % 100 == 0 and s["characters"] >= 20_000
    assert sum(s["rows"] for s in manifest["shards"]) == 3000


def test_shuffle_is_deterministic_and_global(tmp_path):
    docs = make_docs(2000)
    m1 = run(docs, tmp_path / "a", chars_per_shard=20_000, row_group_size=64)
    m2 = run(docs, tmp_path / "b", chars_per_shard=20_000, row_group_size=64)
    assert m1 == m2  # identical shard bytes (sha256 per shard) and manifest
    for s in m1["shards"]:
        assert (tmp_path / "a" / s["name"]).read_bytes() == (tmp_path / "b" / s["name"]).read_bytes()
    shuffled = read_all(list_parquet_files(tmp_path / "a"))
    assert shuffled != docs and sorted(shuffled) == sorted(docs)
    # Global: documents from the end of the input reach the first shard.
    first = set(pq.read_table(tmp_path / "a" / "shard_00000.parquet").column("text").to_pylist())
    assert first & set(docs[-500:])
    m3 = run(docs, tmp_path / "c", chars_per_shard=20_000, row_group_size=64, seed=7)
    assert m3["content_sha256"] != m1["content_sha256"]


def test_bucket_resplit_keeps_memory_bounded(tmp_path, monkeypatch):
    # Force tiny buckets so the recursive re-split path runs; the output is still a deterministic permutation.
    monkeypatch.setattr(shuffle, "NUM_BUCKETS", 4)
    monkeypatch.setattr(shuffle, "BUCKET_BYTES", 10_000)
    monkeypatch.setattr(shuffle, "CHUNK_DOCS", 100)
    docs = make_docs(1500)
    m1 = run(docs, tmp_path / "a", chars_per_shard=50_000, row_group_size=50)
    m2 = run(docs, tmp_path / "b", chars_per_shard=50_000, row_group_size=50)
    assert m1 == m2
    out = read_all(list_parquet_files(tmp_path / "a"))
    assert sorted(out) == sorted(docs) and out != docs


def test_small_corpus_validation_is_last_tenth(tmp_path):
    logs: list[str] = []
    docs = make_docs(5000)
    manifest = run(docs, tmp_path / "d", logs=logs, row_group_size=128)  # default 250M chars per shard
    val = manifest["shards"][-1]
    assert manifest["settings"]["layout"] == "small-corpus"
    assert val["split"] == "val" and val["rows"] == 500 and len(manifest["shards"]) == 2
    assert any("smaller than 10 target shards" in line and "500 of 5,000" in line for line in logs)
    assert any(line.startswith("Info: Shard too small: shard_00000.parquet") and "250,000,000" in line for line in logs)
    # The validation shard is the *last* documents of the shuffled order.
    files = list_parquet_files(tmp_path / "d")
    assert len(read_all(files[:-1])) == 4500


def test_small_corpus_validation_is_at_least_one_row_group(tmp_path):
    manifest = run(make_docs(3000), tmp_path / "d", chars_per_shard=200_000, row_group_size=1024)
    assert manifest["shards"][-1]["rows"] == 1024  # 10% would be 300
    assert all(s["rows"] for s in manifest["shards"])
    tiny = run(make_docs(10), tmp_path / "t", row_group_size=1024)
    assert [s["rows"] for s in tiny["shards"]] == [5, 5]  # never more than half the corpus
    assert math.ceil(10 * 0.1) <= tiny["shards"][-1]["rows"]


def test_rerun_replaces_stale_shards(tmp_path):
    out = tmp_path / "d"
    run(make_docs(3000), out, chars_per_shard=20_000, row_group_size=100)
    many = len(list_parquet_files(out))
    manifest = run(make_docs(300), out, row_group_size=100)
    assert len(list_parquet_files(out)) == len(manifest["shards"]) < many
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # staging removed


@pytest.mark.parametrize("docs", [[], ["only one"], ["", ""]])
def test_empty_corpus_is_a_clear_error_and_writes_nothing(tmp_path, docs):
    with pytest.raises(RepackageError, match="at least 2"):
        run(docs, tmp_path / "d")
    assert list(tmp_path.iterdir()) == []  # no output folder, no staging left behind


def test_missing_text_column_names_file_and_field(tmp_path):
    bad = tmp_path / "in.parquet"
    pq.write_table(pa.table({"content": ["a", "b"]}), bad)
    with pytest.raises(SourceError, match=r"in\.parquet.*'text'"):
        repackage(local_source([str(bad)]), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_corrupted_parquet_keeps_previous_shards(tmp_path):
    out = tmp_path / "out"
    before = run(make_docs(100), out, row_group_size=10)
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"text": make_docs(50)}), good)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(good.read_bytes()[:-100])  # truncated: footer gone
    with pytest.raises(SourceError, match="broken.parquet"):
        repackage(local_source([str(good), str(broken)]), out, progress=False)
    assert json.loads((out / "manifest.json").read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_cli_local_and_errors(tmp_path, capsys):
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"text": d}) + "\n" for d in make_docs(200)))
    out = tmp_path / "shards"
    rc = repackage_data.main(["--source", "local", "--input", str(tmp_path / "*.jsonl"), "--output-dir", str(out),
                              "--row-group-size", "16", "--chars-per-shard", "2e4", "--no-progress"])
    assert rc == 0 and len(list_parquet_files(out)) >= 2
    assert "validation" in capsys.readouterr().out
    rc = repackage_data.main(["--source", "local", "--input", str(src), "--text-field", "body",
                              "--output-dir", str(tmp_path / "x"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "docs.jsonl:1" in err and "'body'" in err
    with pytest.raises(SystemExit):
        repackage_data.main(["--source", "local"])  # --input required
    with pytest.raises(SystemExit):
        repackage_data.main(["--row-group-size", "0"])
