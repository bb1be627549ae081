"""Document sources: local formats and globs, the embedded corpus, FineWeb-Edu via a local fake Hub."""
from __future__ import annotations

import gzip
import hashlib
import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nanochat_core.data import fineweb
from nanochat_core.data.embedded_corpus import iter_embedded_documents
from nanochat_core.data.sources import SourceError, expand_inputs, iter_file_documents, local_source
from fake_hub import serving
from helpers import free_port


def docs_of(patterns, field="text"):
    return list(local_source(patterns, field).documents())


# --- local files -------------------------------------------------------------------------------

@pytest.fixture
def corpus_dir(tmp_path):
    pq.write_table(pa.table({"text": ["p1", None, "p2"], "id": [1, 2, 3]}), tmp_path / "a.parquet", row_group_size=2)
    (tmp_path / "b.jsonl").write_text('{"text": "j1"}\n\n{"text": "j2", "x": 1}\n')
    with gzip.open(tmp_path / "c.jsonl.gz", "wt") as f:
        f.write('{"text": "g1"}\n{"text": ""}\n')
    (tmp_path / "d.txt").write_text("line one\n\n   \nline two\r\n")
    return tmp_path


def test_local_formats_in_sorted_glob_order(corpus_dir):
    assert docs_of([str(corpus_dir / "*")]) == ["p1", "p2", "j1", "j2", "g1", "line one", "line two"]
    assert docs_of([str(corpus_dir / "*.txt"), str(corpus_dir / "a.parquet")]) == ["line one", "line two", "p1", "p2"]
    assert docs_of([str(corpus_dir)]) == docs_of([str(corpus_dir / "**" / "*.*")])  # folder = its supported files


def test_text_field_and_description(corpus_dir):
    (corpus_dir / "e.jsonl").write_text('{"body": "b1"}\n')
    source = local_source([str(corpus_dir / "e.jsonl")], text_field="body")
    assert list(source.documents()) == ["b1"]
    assert source.description == {"kind": "local", "files": [str(corpus_dir / "e.jsonl")], "text_field": "body"}
    assert list(source.documents()) == ["b1"]  # each call is a fresh pass


def test_local_errors_name_file_and_field(corpus_dir):
    with pytest.raises(SourceError, match=r"b\.jsonl:1: no field 'body'"):
        docs_of([str(corpus_dir / "b.jsonl")], "body")
    with pytest.raises(SourceError, match=r"a\.parquet: no column 'body'"):
        docs_of([str(corpus_dir / "a.parquet")], "body")
    with pytest.raises(SourceError, match="no files match"):
        expand_inputs([str(corpus_dir / "*.csv")])
    with pytest.raises(SourceError, match="no such file"):
        expand_inputs([str(corpus_dir / "missing.jsonl")])
    (corpus_dir / "x.csv").write_text("a,b\n")
    with pytest.raises(SourceError, match="unsupported file type"):
        expand_inputs([str(corpus_dir / "x.csv")])
    (corpus_dir / "bad.jsonl").write_text('{"text": "ok"}\n{not json\n')
    with pytest.raises(SourceError, match=r"bad\.jsonl:2: not valid JSON"):
        list(iter_file_documents([corpus_dir / "bad.jsonl"]))
    (corpus_dir / "bad.jsonl.gz").write_bytes(b"not gzip at all")
    with pytest.raises(SourceError, match=r"bad\.jsonl\.gz: unreadable"):
        list(iter_file_documents([corpus_dir / "bad.jsonl.gz"]))
    (corpus_dir / "bad.parquet").write_bytes(b"PAR1garbage")
    with pytest.raises(SourceError, match=r"bad\.parquet: not a readable parquet"):
        list(iter_file_documents([corpus_dir / "bad.parquet"]))


# --- embedded corpus ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def embedded_docs():
    return list(iter_embedded_documents())  # ~7 s: built once for this module


def test_embedded_corpus_is_large_english_and_deduplicated(embedded_docs):
    total = sum(len(d.encode("utf-8")) for d in embedded_docs)
    assert total >= 5_000_000
    assert len(set(embedded_docs)) == len(embedded_docs)
    text = "\n".join(embedded_docs[:2000])
    for word in (" the ", " return", " file", " value"):
        assert word in text


def test_embedded_corpus_is_deterministic(embedded_docs):
    # A second, shorter build must reproduce the beginning of the first exactly (same order, same text).
    prefix = list(iter_embedded_documents(target_bytes=300_000))
    assert prefix == embedded_docs[: len(prefix)]
    assert hashlib.sha256("\0".join(prefix).encode()).hexdigest() == hashlib.sha256(
        "\0".join(embedded_docs[: len(prefix)]).encode()).hexdigest()


# --- FineWeb-Edu through a fake Hub on 127.0.0.1 ------------------------------------------------

def parquet_bytes(texts):
    buf = io.BytesIO()
    pq.write_table(pa.table({"id": list(range(len(texts))), "text": texts}), buf)
    return buf.getvalue()


@pytest.fixture
def fake_hub(monkeypatch):
    revision = "0123456789abcdef0123456789abcdef01234567"
    files = {f"{fineweb.FINEWEB_SUBSET}/00{i}_00000.parquet": parquet_bytes([f"fw doc {i}.{k}" for k in range(3)])
             for i in (1, 0, 2)}
    with serving(monkeypatch, {fineweb.FINEWEB_REPO: files}, revision) as hub:
        yield hub


def test_fineweb_downloads_pinned_files_in_order(fake_hub, tmp_path):
    source = fineweb.fineweb_source(num_files=2, revision=fake_hub.revision, download_dir=tmp_path / "dl")
    assert list(source.documents()) == [f"fw doc {i}.{k}" for i in (0, 1) for k in range(3)]
    assert source.description["revision"] == fake_hub.revision
    assert source.description["files"] == ["000_00000.parquet", "001_00000.parquet"]
    assert fake_hub.requests[0][:2] == ("HEAD", "/")  # the reachability probe, at HF_ENDPOINT, before the listing
    dataset_requests = [r for r in fake_hub.requests if fineweb.FINEWEB_REPO in r[1]]
    assert dataset_requests and all(auth == "Bearer hf_test_token" for _, _, auth in dataset_requests)  # HF_TOKEN sent
    gets = [p for method, p, _ in fake_hub.requests if method == "GET" and "/resolve/" in p]
    assert len(gets) == 2
    # A second run finds the complete files and downloads nothing again.
    again = fineweb.fineweb_source(num_files=-1, revision=fake_hub.revision, download_dir=tmp_path / "dl")
    assert len(again.description["files"]) == 3
    gets = [p for method, p, _ in fake_hub.requests if method == "GET" and "/resolve/" in p]
    assert len(gets) == 3  # only the third, new file


def test_fineweb_with_no_hub_fails_at_once_naming_the_host(monkeypatch, tmp_path):
    """One probe, no retries: huggingface_hub's own client (~24 s of retries on a refused connection) is
    never reached when the Hub does not answer at all."""
    import huggingface_hub
    from huggingface_hub import constants

    def never(*args, **kwargs):
        raise AssertionError("the Hub client was called although the Hub did not answer the probe")

    port = free_port()  # nothing listens there
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_tree", never)
    with pytest.raises(SourceError, match=rf"cannot reach the Hugging Face Hub at 127\.0\.0\.1:{port} \(HF_ENDPOINT\): "
                                          r"ConnectError: .*check the network and HF_ENDPOINT"):
        fineweb.fineweb_source(num_files=1, download_dir=tmp_path)


def test_fineweb_in_offline_mode_makes_no_probe(monkeypatch, tmp_path):
    from huggingface_hub import constants

    from nanochat_core.common import reachability

    def no_probe(*args, **kwargs):
        raise AssertionError("probed the network in HF_HUB_OFFLINE mode")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(reachability, "probe", no_probe)
    with pytest.raises(SourceError, match="OfflineModeIsEnabled"):
        fineweb.fineweb_source(num_files=1, download_dir=tmp_path)


def test_fineweb_unknown_revision_is_a_clear_error(fake_hub, tmp_path):
    with pytest.raises(SourceError, match="cannot list HuggingFaceFW/fineweb-edu"):
        fineweb.fineweb_source(num_files=1, revision="f" * 40, download_dir=tmp_path)
