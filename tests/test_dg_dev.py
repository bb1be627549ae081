"""The README's UI command, `dg dev -w workspace.yaml`, serves our code location without the
deprecation warning `dagster dev` prints on Dagster 1.13."""
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import free_port

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
QUERY = '{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }'


def test_dg_dev_serves_the_workspace_without_a_deprecation_warning(tmp_path):
    dg = shutil.which("dg")
    assert dg, "dagster-dg-cli (pinned in pyproject.toml) provides `dg`"
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO / "nanochat_pipeline" / "dagster.yaml", home / "dagster.yaml")
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "NANOCHAT_BASE_DIR": str(tmp_path / "base"),
           "NANOCHAT_PRESET": "demo"}
    log = open(tmp_path / "dg_dev.log", "w")
    proc = subprocess.Popen([dg, "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)], cwd=REPO,
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        entries, deadline = None, time.time() + 180
        while time.time() < deadline and proc.poll() is None:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps(
                    {"query": QUERY}).encode(), headers={"Content-Type": "application/json"})
                entries = json.load(urllib.request.urlopen(request, timeout=5))["data"]["workspaceOrError"]["locationEntries"]
                if entries and entries[0]["loadStatus"] == "LOADED":
                    break
            except OSError:
                pass
            time.sleep(1)
        assert entries == [{"name": "nanochat", "loadStatus": "LOADED"}], (tmp_path / "dg_dev.log").read_text()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the webserver can take over 15 s to stop on SIGTERM
        proc.wait(timeout=30)
        log.close()
    output = (tmp_path / "dg_dev.log").read_text()
    assert "deprecat" not in output.lower(), output
