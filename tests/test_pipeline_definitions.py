"""Definitions load for every shipped preset; presets and partition keys refuse bad input by name."""
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from nanochat_pipeline.definitions import build_definitions
from nanochat_pipeline.partitions import cell_from_key, grid_partitions
from nanochat_pipeline.presets import PresetError, load_preset

REPO = Path(__file__).resolve().parents[1]
ASSETS = {"raw_corpus", "shuffled_shards", "tokenizer", "base_model", "sft_model", "rl_model", "eval_report",
          "synthetic_conversations", "scaling_results", "eval_bundle", "task_data"}


@pytest.mark.parametrize("name", ["demo", "scaling", "speedrun"])
def test_shipped_presets_load_as_definitions(name, tmp_base_dir):
    preset = load_preset(name)
    defs = build_definitions(preset)
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == ASSETS
    grid = graph.get(dg.AssetKey("base_model")).partitions_def
    assert len(grid.get_partition_keys()) == len(preset.depth_keys) * len(preset.flops_keys)
    assert graph.get(dg.AssetKey("sft_model")).partitions_def == grid
    assert preset.root == tmp_base_dir / "pipeline" / name


def test_scaling_preset_is_nanochats_sweep(tmp_base_dir):
    keys = grid_partitions(load_preset("scaling")).get_partition_keys()
    assert "d8|2.15e18" in keys and "d24|1e19" in keys and len(keys) == 36
    cell = cell_from_key(grid_partitions(load_preset("scaling")), "d12|4.64e18")
    assert (cell.depth, cell.target_flops, cell.model_tag) == (12, 4.64e18, "d12_4.64e18")


def test_unknown_partition_key_names_the_grid(tmp_base_dir):
    with pytest.raises(dg.Failure, match=r"unknown partition key .d7\|1e13.*d1\|2.5e10"):
        cell_from_key(grid_partitions(load_preset("demo")), "d7|1e13")


def test_preset_typo_is_refused_by_name(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('depths = [2]\nflops = ["1e13"]\n[train]\nmatrx_lr = 0.01\n')
    with pytest.raises(PresetError, match=r"unknown key\(s\) \['matrx_lr'\]"):
        load_preset(str(bad))
    bad.write_text('depths = [2]\nflops = ["1e1x"]\n')
    with pytest.raises(PresetError, match="flops entry '1e1x' is not a number"):
        load_preset(str(bad))
    bad.write_text('depths = [2]\nflops = ["1e13"]\n[train]\ndepth = 4\n')
    with pytest.raises(PresetError, match=r"\['depth'\]"):  # the grid owns depth
        load_preset(str(bad))
    with pytest.raises(PresetError, match="neither a shipped preset"):
        load_preset("no-such-preset")


def test_workspace_validates_from_the_cli(tmp_base_dir):
    done = subprocess.run([sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "passed validation" in done.stderr + done.stdout


def test_run_command_reports_a_bad_preset(tmp_base_dir, tmp_path):
    bad = tmp_path / "typo.toml"
    bad.write_text('depths = [2]\nflops = ["1e13"]\n[tokenizer]\nvocab = 512\n')
    done = subprocess.run([sys.executable, "-m", "nanochat_pipeline", "run", "--preset", str(bad)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "unknown key(s) ['vocab']" in done.stderr
