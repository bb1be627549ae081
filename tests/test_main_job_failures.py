"""The main job as a user meets its failures: a Hub that cannot be reached is named on the failed
asset's one terminal line (Dagster's wrapper stays in the log file), and a grid that would train for
more than an hour here is stated and not started without --yes when stdin is not a terminal."""
import io
import os
import subprocess
import sys

import dagster as dg
import pytest

from helpers import free_port, write_tiny_preset
from nanochat_pipeline.cli.grid_cost import REFUSED, confirmed, grid_cost
from nanochat_pipeline.partitions import cell_from_key, grid_partitions
from nanochat_pipeline.presets import load_preset


def run_cli(preset_path, base, *flags, extra_env=None, timeout=600):
    env = os.environ | {"NANOCHAT_BASE_DIR": str(base), "DAGSTER_HOME": str(base / "dagster_home"),
                        "OMP_NUM_THREADS": "1"} | (extra_env or {})
    env.pop("NANOCHAT_PRESET", None)
    proc = subprocess.run([sys.executable, "-m", "nanochat_pipeline", "run", "--preset", str(preset_path), *flags],
                          env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return proc.returncode, proc.stdout, proc.stderr


def test_grid_cost_is_the_cells_flops_over_the_peak(tmp_path):
    # the tiny preset's [train] says peak_flops = 1e11: no probe, and the hours follow by hand
    preset = load_preset(str(write_tiny_preset(tmp_path, depths=(1, 2), flops=("1e16", "3e16"))))
    partitions = grid_partitions(preset)
    cells = [cell_from_key(partitions, key) for key in partitions.get_partition_keys()]
    cost = grid_cost(preset, cells)
    assert cost.flops == 2 * (1e16 + 3e16) and cost.peak == 1e11 and cost.device == "cpu"
    assert cost.seconds == pytest.approx(8e16 / 1e11)  # 8e5 s: 222 hours, 9.3 days
    assert "4 cell(s) to train, 8e+16 FLOPs in all: at least 9 days on this machine (cpu" in cost.line()
    assert grid_cost(preset, []) is None

    said = []
    assert not confirmed(cost, yes=False, say=said.append, stdin=io.StringIO("y\n"))  # a pipe: never asked
    assert "needs --yes when stdin is not a terminal" in said[-1]
    assert confirmed(cost, yes=True, say=said.append, stdin=io.StringIO(""))
    said.clear()
    small_preset = load_preset(str(write_tiny_preset(tmp_path, name="small", flops=("3e13",))))
    small = grid_cost(small_preset, [cell_from_key(grid_partitions(small_preset), "d1|3e13")])
    assert small.seconds == pytest.approx(300)  # 3e13 / 1e11: five minutes, started without a word
    assert confirmed(small, yes=False, say=said.append) and confirmed(None, yes=False, say=said.append)
    assert said == []


@pytest.mark.parametrize("answer, trains", [("y\n", True), ("yes\n", True), ("\n", False), ("n\n", False)])
def test_on_a_terminal_the_person_is_asked(tmp_path, answer, trains):
    import pty

    preset = load_preset(str(write_tiny_preset(tmp_path, flops=("1e16",))))
    cost = grid_cost(preset, [cell_from_key(grid_partitions(preset), "d1|1e16")])
    leader, follower = pty.openpty()  # a real terminal device as stdin
    os.write(leader, answer.encode())
    said = []
    with os.fdopen(follower, "r") as terminal:
        assert terminal.isatty()
        assert confirmed(cost, yes=False, say=said.append, stdin=terminal) is trains
    os.close(leader)
    assert said[0].startswith("the grid: 1 cell(s) to train") and said[1] == "train it? [y/N] "
    assert len(said) == (2 if trains else 3)


@pytest.mark.slow
def test_a_grid_over_an_hour_is_not_started_without_yes(tmp_path):
    base = tmp_path / "base"
    preset = write_tiny_preset(tmp_path, flops=("1e16",), extra_sections="[evaluation]\noffline = true\n")
    code, out, err = run_cli(preset, base)
    assert code == REFUSED, out + err
    assert ("the grid: 1 cell(s) to train, 1e+16 FLOPs in all: at least 27.8 hours on this machine (cpu, peak 1e+11 "
            "FLOP/s: --peak-flops" in out), out
    assert "not starting it: more than 1.0 hours of training needs --yes when stdin is not a terminal" in out, out
    assert "failed: the log file" not in out  # a refusal is not a failure
    with dg.DagsterInstance.from_config(str(base / "dagster_home")) as instance:
        assert instance.fetch_materializations(dg.AssetKey("tokenizer"), limit=1).records  # the data went ahead
        assert not instance.fetch_materializations(dg.AssetKey("base_model"), limit=1).records  # the grid did not


@pytest.mark.slow
def test_an_unreachable_hub_is_named_on_the_failed_assets_line(tmp_path):
    port = free_port()  # nothing listens there: every connection is refused
    base = tmp_path / "base"
    preset = write_tiny_preset(tmp_path)
    preset.write_text(preset.read_text().replace('source = "local"', 'source = "fineweb-edu"'))
    code, out, err = run_cli(preset, base, extra_env={"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HUB_OFFLINE": "0"})
    assert code == 1, out + err
    lines = [line for line in out.splitlines() if line.startswith("  raw_corpus failed: ")]
    assert len(lines) == 1, out
    assert f"cannot reach the Hugging Face Hub at 127.0.0.1:{port} (HF_ENDPOINT): ConnectError" in lines[0], lines[0]
    assert "check the network and HF_ENDPOINT" in lines[0]
    assert "DagsterExecutionStepExecutionError" not in out and "Error occurred while executing" not in out, out
    log = next(line.split("log: ", 1)[1] for line in out.splitlines() if line.startswith("log: "))
    assert "DagsterExecutionStepExecutionError" in open(log, encoding="utf-8").read()  # the wrapper is in the log
