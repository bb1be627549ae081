"""The evaluation inputs: the reachability probe (bounded in time), `offline = "auto"`, NANOCHAT_EVAL_BUNDLE_DIR,
a partial bundle, and the inputs' Config classes, on real sockets, a real HTTP server on 127.0.0.1 and a real
Dagster instance."""
from __future__ import annotations

import http.server
import shutil
import socket
import threading
import time

import dagster as dg
import pytest

from helpers import (latest_materialization, materialize, metadata_values, serving_http, tiny_defs,
                     write_tiny_preset, zipped_folder)
from nanochat_core.common import reachability
from nanochat_core.evaluation.core import evaluate_model
from nanochat_core.evaluation.core_bundle import BUNDLE_DIR_ENV, URL_ENV
from nanochat_pipeline.presets import network
from test_core_eval import BigramStub, CharTokenizer, write_bundle


@pytest.fixture
def silent_server():
    """A socket on 127.0.0.1 that accepts every connection and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", held
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


class BundleHandler(http.server.BaseHTTPRequestHandler):
    """Serves a zip at any path (GET) and answers HEAD; counts the requests of each kind."""
    payload = b""
    requests: list = []

    def do_HEAD(self):
        type(self).requests.append(("HEAD", self.path))
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()

    def do_GET(self):
        type(self).requests.append(("GET", self.path))
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def bundle_server(tmp_path):
    BundleHandler.payload, BundleHandler.requests = zipped_folder(write_bundle(tmp_path / "served"), "eval_bundle"), []
    with serving_http(http.server.ThreadingHTTPServer(("127.0.0.1", 0), BundleHandler)) as url:
        yield url, BundleHandler


@pytest.fixture
def fresh_probe(monkeypatch):
    """Each test probes afresh (the pipeline probes once per process)."""
    monkeypatch.setattr(network, "_probed", {})
    monkeypatch.delenv(BUNDLE_DIR_ENV, raising=False)


def test_probe_of_a_host_that_never_answers_is_bounded(silent_server, bundle_server):
    silent, held = silent_server
    answering, handler = bundle_server
    t0 = time.monotonic()
    found = reachability.probe([f"{silent}/eval_bundle.zip", f"{silent}/api", answering, "http://127.0.0.1:1/"],
                               budget_s=3.0)
    elapsed = time.monotonic() - t0
    assert elapsed < 3.5  # the budget for all of them together: two silent hosts probed one after the other take 6 s
    assert held  # the silent server did accept: the probe waited on an open connection, not a refused one
    assert not found[f"{silent}/eval_bundle.zip"].answered
    # the budget ran out, or (when this process was not scheduled in time) httpx's own 3 s timeout said so first
    assert found[f"{silent}/eval_bundle.zip"].detail in ("no answer within 3 s", "ReadTimeout: timed out")
    assert found[answering].answered and found[answering].detail.startswith("HTTP 200")
    refused = found["http://127.0.0.1:1/"]
    assert not refused.answered  # refused (ConnectError), or on a very busy machine not even that in time
    assert not found[f"{silent}/api"].answered
    assert handler.requests == [("HEAD", "/")]  # one request, no retries, nothing downloaded


def test_auto_with_no_answer_goes_on_offline_and_says_so(tmp_base_dir, tmp_path, monkeypatch, silent_server,
                                                        fresh_probe):
    silent, _ = silent_server
    monkeypatch.setenv(URL_ENV, f"{silent}/eval_bundle.zip")
    monkeypatch.setenv("HF_ENDPOINT", silent)
    monkeypatch.setattr(reachability, "PROBE_BUDGET_S", 2.0)
    defs, preset = tiny_defs(write_tiny_preset(tmp_path))
    assert preset.evaluation.get("offline", "auto") == "auto"
    with dg.instance_for_test() as instance:
        t0 = time.monotonic()
        assert materialize(defs, instance, ["eval_bundle", "task_data"]).success
        assert time.monotonic() - t0 < 15  # one bounded probe for both assets, then nothing waits on the network
        bundle = metadata_values(latest_materialization(instance, "eval_bundle"))
        assert bundle["available"] is False
        assert bundle["reason"].startswith("no network: 127.0.0.1:") and "no answer within 2 s" in bundle["reason"]
        assert bundle["settings"] == {"offline": "auto", "bundle_dir": str(tmp_base_dir / "pipeline" / "tiny" / "eval_bundle")}
        tasks = metadata_values(latest_materialization(instance, "task_data"))
        assert tasks["network"].startswith("no network") and tasks["available"] == 0
        assert "HF_HUB_OFFLINE" in tasks["sources"]  # the readers were told not to try the Hub
        assert network.child_env(preset)["HF_HUB_OFFLINE"] == "1"


def test_auto_fetches_the_bundle_from_a_server_that_answers_and_it_is_used(tmp_base_dir, tmp_path, monkeypatch,
                                                                          bundle_server, fresh_probe):
    from nanochat_pipeline.assets.evaluation import evaluation_commands, evaluation_inputs

    url, handler = bundle_server
    monkeypatch.setenv(URL_ENV, f"{url}/eval_bundle.zip")
    monkeypatch.setenv("HF_ENDPOINT", url)
    defs, preset = tiny_defs(write_tiny_preset(tmp_path))
    with dg.instance_for_test() as instance:
        assert materialize(defs, instance, ["eval_bundle"]).success
        mat = latest_materialization(instance, "eval_bundle")
        meta = metadata_values(mat)
        assert meta["available"] is True and meta["origin"] == f"downloaded from {url}/eval_bundle.zip"
        assert ("GET", "/eval_bundle.zip") in handler.requests
        assert (meta["tasks"], meta["tasks_present"], meta["partial"]) == (3, 3, False)
        assert mat.tags["dagster/data_version"] == meta["content_sha256"]
        bundle, notes = evaluation_inputs(instance)
        assert bundle == tmp_base_dir / "pipeline" / "tiny" / "eval_bundle" and "3 of 3 tasks present" in notes["eval_bundle"]
        base_eval = evaluation_commands(preset, "d1_2e9", bundle)[0]
        assert base_eval[0] == "nanochat_core.cli.base_eval" and base_eval[1][base_eval[1].index("--bundle-dir") + 1] == str(bundle)
    # the fetched bundle scores what the same tasks score where they were written (test_core_eval's exact numbers)
    result = evaluate_model(BigramStub(), CharTokenizer(), "cpu", bundle_dir=bundle, batch_size=4, log=lambda *a: None)
    assert result["core_metric"] == pytest.approx((2 / 3 + 0.0 + 0.8) / 3) and not result["partial"]


def test_bundle_dir_is_used_where_it_lies_partial_named_and_versioned_by_content(tmp_base_dir, tmp_path, monkeypatch,
                                                                                fresh_probe):
    from nanochat_pipeline.staleness import run_reason

    partial = write_bundle(tmp_path / "partial", skip_data={"schema"})
    monkeypatch.setenv(BUNDLE_DIR_ENV, str(partial))
    monkeypatch.setenv(URL_ENV, "http://127.0.0.1:1/never.zip")  # a download would fail: none is attempted
    preset_path = write_tiny_preset(tmp_path, extra_sections='\n[evaluation]\noffline = true\n')
    defs, _ = tiny_defs(preset_path)
    with dg.instance_for_test() as instance:
        assert materialize(defs, instance, ["eval_bundle"]).success
        mat = latest_materialization(instance, "eval_bundle")
        meta = metadata_values(mat)
        assert meta["available"] and meta["path"] == str(partial) and meta["origin"] == "given folder (nothing fetched)"
        assert meta["partial"] is True and meta["missing_tasks"] == "schema (eval_data/schema/schema.jsonl)"
        assert (meta["tasks"], meta["tasks_present"]) == (3, 2)
        first_version = mat.tags["dagster/data_version"]
        assert not (tmp_base_dir / "pipeline" / "tiny" / "eval_bundle").exists()  # not copied, not downloaded

        # the same content elsewhere is the same bundle; other content is another data version
        same = tmp_path / "same"
        shutil.copytree(partial, same)
        monkeypatch.setenv(BUNDLE_DIR_ENV, str(same))
        defs_same, _ = tiny_defs(preset_path)
        graph = defs_same.resolve_asset_graph()
        assert "unsynced" in run_reason(graph, instance, dg.AssetKey("eval_bundle"))  # pointing elsewhere: look again
        assert materialize(defs_same, instance, ["eval_bundle"]).success
        assert latest_materialization(instance, "eval_bundle").tags["dagster/data_version"] == first_version
        (same / "eval_data" / "lm" / "lm.jsonl").write_text('{"context": "a b", "continuation": "c"}\n')
        assert materialize(defs_same, instance, ["eval_bundle"]).success
        assert latest_materialization(instance, "eval_bundle").tags["dagster/data_version"] != first_version


def test_bundle_dir_without_core_yaml_fails_naming_it(tmp_base_dir, tmp_path, monkeypatch, fresh_probe):
    empty = tmp_path / "not_a_bundle"
    empty.mkdir()
    monkeypatch.setenv(BUNDLE_DIR_ENV, str(empty))
    defs, _ = tiny_defs(write_tiny_preset(tmp_path))
    with dg.instance_for_test() as instance:
        result = materialize(defs, instance, ["eval_bundle"], raise_on_error=False)
        assert not result.success
        from helpers import failure_messages
        message = failure_messages(result)
        assert str(empty) in message and BUNDLE_DIR_ENV in message and "has no core.yaml" in message


def test_config_overrides_the_preset_and_a_misspelt_key_is_refused_by_name(tmp_base_dir, tmp_path, monkeypatch,
                                                                          fresh_probe):
    bundle = write_bundle(tmp_path / "b")
    defs, _ = tiny_defs(write_tiny_preset(tmp_path, extra_sections='\n[evaluation]\noffline = true\n'))
    with dg.instance_for_test() as instance:
        config = {"ops": {"eval_bundle": {"config": {"bundle_dir": str(bundle), "offline": "false"}}}}
        assert materialize(defs, instance, ["eval_bundle"], run_config=config).success
        meta = metadata_values(latest_materialization(instance, "eval_bundle"))
        assert meta["path"] == str(bundle) and meta["settings"] == {"offline": False, "bundle_dir": str(bundle)}
        with pytest.raises(dg.DagsterInvalidConfigError, match="bundel_dir"):
            materialize(defs, instance, ["eval_bundle"], run_config={"ops": {"eval_bundle": {"config": {"bundel_dir": "x"}}}})
        with pytest.raises(dg.DagsterInvalidConfigError, match="task_dat"):
            materialize(defs, instance, ["task_data"], run_config={"ops": {"task_data": {"config": {"task_dat": "x"}}}})
        bad = materialize(defs, instance, ["eval_bundle"], raise_on_error=False,
                          run_config={"ops": {"eval_bundle": {"config": {"offline": "sometimes"}}}})
        from helpers import failure_messages
        assert not bad.success and "'sometimes' is none of true, false, auto" in failure_messages(bad)


def test_preset_offline_takes_true_false_or_auto_only(tmp_path):
    from nanochat_pipeline.presets import PresetError, load_preset

    for shipped in ("demo", "scaling", "speedrun"):
        assert load_preset(shipped).evaluation["offline"] == "auto"
    with pytest.raises(PresetError, match=r"\[evaluation\] offline: 'yes' is none of true, false, \"auto\""):
        load_preset(str(write_tiny_preset(tmp_path, name="a", extra_sections='\n[evaluation]\noffline = "yes"\n')))
    with pytest.raises(PresetError, match=r"\[evaluation\] core_max_per_task: 0 is not a positive integer"):
        load_preset(str(write_tiny_preset(tmp_path, name="b", extra_sections="\n[evaluation]\ncore_max_per_task = 0\n")))


def test_the_core_commands_default_to_the_bundle_dir_too(tmp_base_dir, tmp_path, monkeypatch):
    from nanochat_core.evaluation import core_bundle

    monkeypatch.setenv(URL_ENV, "http://127.0.0.1:1/never.zip")  # a download would fail: none is attempted
    given = write_bundle(tmp_path / "given")
    monkeypatch.setenv(BUNDLE_DIR_ENV, str(given))
    assert core_bundle.ensure_bundle() == given  # base_eval's and base_train's CORE default
    monkeypatch.delenv(BUNDLE_DIR_ENV)
    with pytest.raises(RuntimeError, match="127.0.0.1:1"):  # without it: the preset root's folder, downloaded
        core_bundle.ensure_bundle()


def test_manifests_environment_follows_the_preset_and_never_probes(tmp_base_dir, tmp_path, monkeypatch, fresh_probe):
    """Manifests are rendered here and run in a cluster: this machine's network must not decide whether the
    pods' children are offline, so under "auto" nothing is probed and the Hub stays allowed."""
    def no_probe(*args, **kwargs):
        raise AssertionError("declared_env probed the network")

    monkeypatch.setattr(reachability, "probe", no_probe)
    _, auto = tiny_defs(write_tiny_preset(tmp_path))
    assert network.declared_env(auto) == {"NANOCHAT_BASE_DIR": str(auto.root)}
    _, offline = tiny_defs(write_tiny_preset(tmp_path, name="offline", extra_sections="[evaluation]\noffline = true\n"))
    assert network.declared_env(offline)["HF_HUB_OFFLINE"] == "1"
    with pytest.raises(AssertionError, match="probed"):  # the asset-side environment does probe under "auto"
        network.child_env(auto)
