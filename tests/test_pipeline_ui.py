"""The real webserver + daemon (`dagster dev`) on 127.0.0.1: a partition backfill of two tiny cells
launched over GraphQL, the training pool keeping them from running at once, and the asset graph
rendered by headless Chromium."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from nanochat_pipeline.instance_home import ensure_training_pool
from helpers import DATA_ASSETS, materialize, tiny_defs, write_tiny_preset

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
CELLS = ["d1|2e9", "d1|4e9"]
LAUNCH = """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
STATUS = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  __typename ... on PartitionBackfill { status } ... on PythonError { message } } }"""
DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port, query, variables):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", method="POST",
                                     data=json.dumps({"query": query, "variables": variables}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


def wait_for_server(port, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "dagster dev exited early"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise TimeoutError("webserver did not come up")


@pytest.fixture
def dagster_dev(tmp_base_dir, tmp_path, monkeypatch):
    preset_path = write_tiny_preset(tmp_path)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO / "nanochat_pipeline" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("NANOCHAT_PRESET", str(preset_path))
    defs, _ = tiny_defs(preset_path)
    with dg.DagsterInstance.get() as instance:
        ensure_training_pool(instance)  # as `python -m nanochat_pipeline run` does
        assert materialize(defs, instance, DATA_ASSETS).success  # the cells' upstream, same history
    port = free_port()
    log = open(tmp_path / "dagster_dev.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1",
                             "-p", str(port)], cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_server(port, proc)
        yield port, home
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # our own process group only
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_backfill_from_graphql_and_asset_graph_in_chromium(dagster_dev, tmp_path):
    port, home = dagster_dev
    launched = graphql(port, LAUNCH, {"p": {"partitionNames": CELLS, "assetSelection": [{"path": ["base_model"]}]}})
    result = launched["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    backfill_id, status = result["backfillId"], None
    deadline = time.time() + 240
    while time.time() < deadline and status not in DONE:
        time.sleep(3)
        status = graphql(port, STATUS, {"id": backfill_id})["partitionBackfillOrError"].get("status")
    assert status in {"COMPLETED", "COMPLETED_SUCCESS"}, status

    with dg.DagsterInstance.get() as instance:
        records = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        assert sorted(r.dagster_run.tags["dagster/partition"] for r in records) == CELLS
        assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records)
        # The training pool (limit 1, run granularity) never lets two cells run at once.
        spans = sorted((r.start_time, r.end_time) for r in records)
        assert spans[0][1] <= spans[1][0], spans
        for cell in CELLS:
            assert cell in instance.get_materialized_partitions(dg.AssetKey("base_model"))

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium): the browser check is skipped")
    # One graph per asset group (the all-groups page shows collapsed groups, not asset names).
    expected = {"data": ["raw_corpus", "shuffled_shards", "tokenizer"], "training": ["base_model"],
                "scaling": ["scaling_results"], "chat": ["synthetic_conversations", "sft_model"],
                "evaluation": ["eval_bundle", "task_data", "eval_report"]}
    for group, names in expected.items():
        page = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=2400,1600",
             f"--user-data-dir={tmp_path / ('chromium-' + group)}", "--virtual-time-budget=15000", "--dump-dom",
             f"http://127.0.0.1:{port}/locations/nanochat/asset-groups/{group}"],
            capture_output=True, text=True, timeout=120).stdout
        for name in names:
            assert name in page, f"{name} not on the rendered {group} asset graph"
