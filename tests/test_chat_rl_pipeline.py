"""rl_model in the pipeline: the preset's [rl] table and rl_cells, the Pipes child on a real instance, its
blocking checks failing on real bad files, and eval_report's RL row."""
import json
import math
import shutil

import dagster as dg
import pytest
import torch

from nanochat_core.common import settings
from nanochat_core.model import checkpoint as ckpt
from nanochat_pipeline.checks import rl_model_checks
from nanochat_pipeline.children.progress import progress_file
from nanochat_pipeline.presets import PresetError, load_preset
from helpers import (DATA_ASSETS, chat_sections, latest_materialization, materialize, tiny_defs, write_task_data,
                     write_tiny_preset)

CELL = "d1|2e9"
RL_SECTION = """
[rl]
rl_cells = ["d1|2e9"]
task = "arithmetic"
num_iterations = 2
examples_per_step = 2
num_samples = 2
device_batch_size = 2
max_new_tokens = 16
eval_every = 2
eval_examples = 2
"""


def preset_with(tmp_path, sections: str):
    return load_preset(str(write_tiny_preset(tmp_path, extra_sections=sections)))


def test_rl_table_and_cells_are_validated(tmp_path):
    preset = preset_with(tmp_path, "[evaluation]\nchat_cells = [\"d1|2e9\"]\n" + RL_SECTION)
    assert preset.rl_cells == [CELL] and preset.rl["task"] == "arithmetic" and "rl_cells" not in preset.rl
    assert preset_with(tmp_path, "").rl_cells == []  # no [rl] table: no RL
    with pytest.raises(PresetError, match=r"\[rl\] rl_cells: \['d1\|2e9'\] are not chat cells"):
        preset_with(tmp_path, "[evaluation]\nchat_cells = [\"d1|4e9\"]\n" + RL_SECTION)
    with pytest.raises(PresetError, match=r"\[rl\] .*unknown key\(s\) \['num_sample'\]"):
        preset_with(tmp_path, "[rl]\nnum_sample = 3\n")
    with pytest.raises(PresetError, match=r"unknown key\(s\) \['model_tag'\]"):  # the pipeline sets it
        preset_with(tmp_path, "[rl]\nmodel_tag = \"x\"\n")


def write_rl_checkpoint(folder, rewards, step=2):
    """A real (tiny) RL checkpoint: a GPT's weights and a meta with the reward history chat_rl records."""
    from nanochat_core.model.gpt import GPT, GPTConfig

    config = GPTConfig(sequence_len=16, vocab_size=64, n_layer=1, n_head=1, n_kv_head=1, n_embd=32, window_pattern="L")
    model = GPT(config)
    model.init_weights()
    history = {"rewards": [{"step": i, "mean_reward": r, "mean_sequence_length": 10.0} for i, r in enumerate(rewards)],
               "pass_at_k": [{"step": 0, "pass_at_k": [0.5, 0.5], "problems": 2}]}
    ckpt.save_checkpoint(folder, step, model.state_dict(), None,
                         {"step": step, "model_config": config.__dict__, "rl_history": history})


def reported(metadata: dict, ckpt_dir, step=2) -> dg.MaterializeResult:
    """What rl_model's child reports: its metadata and its load check (nanochat_core's load_problem)."""
    problem = ckpt.load_problem(ckpt_dir, step)
    return dg.MaterializeResult(metadata=metadata, check_results=[dg.AssetCheckResult(
        check_name="rl_checkpoint_loads", passed=problem is None, metadata={"outcome": problem or "loaded"})])


def test_rl_checks_fail_on_bad_runs(tmp_path):
    good = {"final_loss": dg.MetadataValue.float(-0.01)}
    write_rl_checkpoint(tmp_path / "ok", [0.25, 0.5])
    assert all(c.passed for c in rl_model_checks(reported(good, tmp_path / "ok"), tmp_path / "ok", 2))

    nan_loss = {c.check_name: c.passed for c in rl_model_checks(reported({"final_loss": float("nan")}, tmp_path / "ok"),
                                                                 tmp_path / "ok", 2)}
    assert nan_loss == {"rl_finite_loss": False, "rl_checkpoint_loads": True, "rl_reward_not_nan": True}

    write_rl_checkpoint(tmp_path / "nan", [0.25, float("nan")])
    reward = {c.check_name: c for c in rl_model_checks(reported(good, tmp_path / "nan"), tmp_path / "nan", 2)}
    assert not reward["rl_reward_not_nan"].passed
    assert "mean reward at step 1: nan" in reward["rl_reward_not_nan"].description

    shutil.copytree(tmp_path / "ok", tmp_path / "broken")
    model_file = ckpt.model_path(tmp_path / "broken", 2)
    model_file.write_bytes(model_file.read_bytes()[:200])  # a truncated save
    loads = {c.check_name: c for c in rl_model_checks(reported(good, tmp_path / "broken"), tmp_path / "broken", 2)}
    assert not loads["rl_checkpoint_loads"].passed and str(model_file) in loads["rl_checkpoint_loads"].description


@pytest.mark.slow
def test_rl_model_after_sft_and_the_rl_row_in_eval_report(tmp_base_dir, tmp_path):
    task_data = tmp_path / "task_data"
    write_task_data(task_data, smoltalk=(None, None), mmlu=(None, None), gsm8k=(None, 2))
    sections = chat_sections(task_data=task_data, chat_max_problems=2,
                             evaluation_extra=f'chat_cells = ["{CELL}"]\n') + RL_SECTION
    defs, preset = tiny_defs(write_tiny_preset(tmp_path, extra_sections=sections))
    with dg.instance_for_test() as instance:
        assert materialize(defs, instance, DATA_ASSETS + ["synthetic_conversations", "eval_bundle", "task_data"]).success
        for asset in ("base_model", "sft_model", "rl_model"):
            result = materialize(defs, instance, [asset], CELL)
            assert result.success, asset
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert checks == {"rl_finite_loss": True, "rl_checkpoint_loads": True, "rl_reward_not_nan": True}
        rl = {k: v.value for k, v in latest_materialization(instance, "rl_model", CELL).metadata.items()}
        assert rl["steps"] == 2 and rl["task"] == "arithmetic" and math.isfinite(rl["final_loss"])
        assert 0.0 <= rl["pass@1_before"] <= 1.0 and 0.0 <= rl["pass@1"] <= 1.0 and rl["rollouts_per_sec"] > 0
        folder = settings.chatrl_checkpoints_dir(preset.root) / "d1_2e9"
        assert ckpt.find_last_step(folder) == 2 and torch.load(ckpt.model_path(folder, 2), weights_only=True)
        # the numbers are chat_rl's own, as its checkpoint meta records them
        history = ckpt.load_meta(folder, 2)["rl_history"]
        assert [e["step"] for e in history["pass_at_k"]] == [0, 2]  # eval_every = 2: before and after
        assert rl["pass@1_before"] == history["pass_at_k"][0]["pass_at_k"][0]
        assert rl["pass@1"] == history["pass_at_k"][-1]["pass_at_k"][0]
        assert (rl["first_mean_reward"], rl["final_mean_reward"]) == (history["rewards"][0]["mean_reward"],
                                                                      history["rewards"][-1]["mean_reward"])
        # the RL child keeps a progress file like the base and SFT children: its last step, of 2
        done = json.loads(progress_file(preset.root, "rl_model", "d1_2e9").read_text())
        assert (done["step"], done["total"]) == (2, 2) and done["rollouts_per_sec"] > 0

        assert materialize(defs, instance, ["eval_report"], CELL).success
        report = {k: v.value for k, v in latest_materialization(instance, "eval_report", CELL).metadata.items()}
        # each column is chat_eval's accuracy for that model, as its JSON records it
        for source in ("rl", "sft"):
            evaluated = json.loads((settings.chat_eval_dir(preset.root) / f"{source}_d1_2e9_000002.json").read_text())
            assert evaluated["tasks"]["GSM8K"]["num_problems"] == 2
            assert report[f"GSM8K ({source})"] == evaluated["tasks"]["GSM8K"]["accuracy"], source
            assert 0.0 <= report[f"GSM8K ({source})"] <= 1.0
        card = (settings.report_dir(preset.root) / "d1_2e9" / "report.md").read_text()
        assert "## RL" in card and "Task: Arithmetic (`--task arithmetic`)" in card
