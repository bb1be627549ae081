"""The real webserver + daemon (`dg dev`, the README's UI command) on 127.0.0.1: the code location loads
without a deprecation warning, a partition backfill of two tiny cells
launched over GraphQL, the training pool keeping them from running at once, and the asset graph
rendered by headless Chromium."""
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from nanochat_pipeline.instance.home import SHIPPED_DAGSTER_YAML, ensure_training_pool
from helpers import (DATA_ASSETS, free_port, materialize, stop_process_group, tiny_defs, wait_for_http, wait_until,
                     write_tiny_preset)

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
CELLS = ["d1|2e9", "d1|4e9"]
LAUNCH = """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
STATUS = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  __typename ... on PartitionBackfill { status } ... on PythonError { message } } }"""
WORKSPACE = '{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }'
DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def graphql(port, query, variables):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", method="POST",
                                     data=json.dumps({"query": query, "variables": variables}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


@pytest.fixture
def dagster_dev(tmp_base_dir, tmp_path, monkeypatch):
    preset_path = write_tiny_preset(tmp_path)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(SHIPPED_DAGSTER_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("NANOCHAT_PRESET", str(preset_path))
    defs, _ = tiny_defs(preset_path)
    with dg.DagsterInstance.get() as instance:
        ensure_training_pool(instance)  # as `python -m nanochat_pipeline run` does
        assert materialize(defs, instance, DATA_ASSETS).success  # the cells' upstream, same history
    dg_command = shutil.which("dg")
    assert dg_command, "dagster-dg-cli (pinned in pyproject.toml) provides `dg`"
    port = free_port()
    log_path = tmp_path / "dg_dev.log"
    log = open(log_path, "w")
    # the README's UI command: webserver and daemon, as `dagster dev` starts them, without its deprecation warning
    proc = subprocess.Popen([dg_command, "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)], cwd=REPO,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/server_info", proc, timeout=300, log=log_path)
        yield port, home, log_path
    finally:
        # our own process group only. Idle, `dg dev` stops in ~2 s; after the six pages its webserver once sat
        # out the whole 30 s grace (its log ends at the daemon's shutdown): nothing is checked after this
        stop_process_group(proc, grace=5)
        log.close()


def test_backfill_from_graphql_and_asset_graph_in_chromium(dagster_dev, tmp_path):
    port, home, log_path = dagster_dev
    # (merged from test_dg_dev.py) `dg dev` serves our code location, and says nothing about deprecation
    def loaded():
        entries = graphql(port, WORKSPACE, {})["workspaceOrError"]["locationEntries"]
        return entries if entries and all(e["loadStatus"] != "LOADING" for e in entries) else None

    location = wait_until(loaded, 180, "the workspace to load", poll=1)
    assert location == [{"name": "nanochat", "loadStatus": "LOADED"}], log_path.read_text()
    assert "deprecat" not in log_path.read_text().lower(), log_path.read_text()
    launched = graphql(port, LAUNCH, {"p": {"partitionNames": CELLS, "assetSelection": [{"path": ["base_model"]}]}})
    result = launched["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    backfill_id, status = result["backfillId"], None
    chromium = shutil.which("chromium")
    # One graph per asset group (the all-groups page shows collapsed groups, not asset names).
    expected = {"data": ["raw_corpus", "shuffled_shards", "tokenizer"], "training": ["base_model"],
                "scaling": ["scaling_results"], "chat": ["synthetic_conversations", "sft_model"], "rl": ["rl_model"],
                "evaluation": ["eval_bundle", "task_data", "eval_report"]}
    # The six pages load side by side (each browser mostly waits on the server and its own timers), while the
    # backfill runs: the backfill daemon looks at it every 30 s, and the pages need nothing from it.
    browsers = {} if chromium is None else {group: subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=2400,1600",
         f"--user-data-dir={tmp_path / ('chromium-' + group)}", "--virtual-time-budget=15000", "--dump-dom",
         f"http://127.0.0.1:{port}/locations/nanochat/asset-groups/{group}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for group in expected}
    try:
        deadline = time.time() + 900  # two cells in turn: minutes on a busy machine
        while time.time() < deadline and status not in DONE:
            time.sleep(1)
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
    except BaseException:
        for browser in browsers.values():  # none left behind by a failed assertion above
            browser.kill()
        raise
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium): the browser check is skipped")
    pages = {group: browser.communicate(timeout=180)[0] for group, browser in browsers.items()}
    for group, names in expected.items():
        for name in names:
            assert name in pages[group], f"{name} not on the rendered {group} asset graph"
