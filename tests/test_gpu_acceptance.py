"""benchmarks/gpu_acceptance.py: the --smoke run (every stage, toy sizes, CPU, gloo) passes and its figures
agree with the files the stages left; a failing stage is reported and the run goes on; the GPU profile refuses
a machine without CUDA."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "gpu_acceptance.py"
STAGES = ["main_job", "train_sssl", "train_l", "train_fp8", "base_eval", "sft", "chat_eval", "generate", "torchrun"]


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_acceptance", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_smoke_runs_every_stage_and_its_figures_match_the_files(tmp_path):
    out, work = tmp_path / "smoke.json", tmp_path / "work"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out), "--keep", str(work)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    stages = {s["stage"]: s for s in report["stages"]}
    assert list(stages) == STAGES
    assert stages["train_fp8"]["status"] == "not run" and "SM90" in stages["train_fp8"]["why"]
    assert all(s["status"] == "ok" for name, s in stages.items() if name != "train_fp8"), report["stages"]
    # the printed table is the JSON's
    assert "GPU acceptance (smoke)" in proc.stdout and all(name in proc.stdout for name in STAGES)

    job = stages["main_job"]
    root = Path(job["root"])
    # Children's training time from Dagster equals the sum the cells' own checkpoints recorded.
    from_files = sum(json.loads(sorted(d.glob("meta_*.json"))[-1].read_text())["throughput"]["training_seconds"]
                     for sub in ("base_checkpoints", "chatsft_checkpoints")
                     for d in (root / sub).iterdir() if d.name.startswith("d"))
    assert job["children_training_s"] == pytest.approx(from_files, abs=0.2)
    assert 0 < job["children_training_s"] < job["wall_s"]
    # the JSON rounds both times to 0.1 s and the share (from the unrounded times) to 0.001: within 0.1 s / wall
    assert job["overhead_share"] == pytest.approx((job["wall_s"] - job["children_training_s"]) / job["wall_s"],
                                                  abs=0.1 / job["wall_s"] + 1e-3)

    for name, pattern in (("train_sssl", "SSSL"), ("train_l", "L")):
        meta = json.loads(sorted((root / "base_checkpoints" / name).glob("meta_*.json"))[-1].read_text())
        assert meta["model_config"]["window_pattern"] == pattern and meta["step"] == stages[name]["steps"] == 3
        assert stages[name]["tok_per_s"] == round(meta["throughput"]["tokens_per_sec"]) > 0
        assert stages[name]["attention"] == meta["attention"] == "sdpa"
    assert 0 < stages["base_eval"]["val_bpb"] < 20
    assert stages["sft"]["steps"] == 2
    ce = stages["chat_eval"]
    assert ce["problems"] == 3 and ce["arithmetic_accuracy"] == pytest.approx(ce["correct"] / 3, abs=1e-4)
    assert stages["generate"]["tok_per_s_b1"] > 0 and stages["generate"]["tok_per_s_b8"] > 0
    assert stages["torchrun"]["backend"] == "gloo" and stages["torchrun"]["world_size"] == 1


def test_a_failing_stage_is_reported_with_its_error_and_the_next_still_runs(tmp_path, capsys):
    ga = load_script()
    run = ga.Run("smoke", tmp_path)

    def broken():
        code, out, _ = run.command("broken", [sys.executable, "-c",
                                              "import sys; print('noise'); print('base_train: error: no shards in /x'); "
                                              "print('Traceback tail'); sys.exit(3)"])
        ga.require(code, out, "base_train")

    run.stage("broken", broken)
    run.stage("fine", lambda: {"status": "ok", "value": 1})
    broken_row, fine_row = run.stages
    assert broken_row["status"] == "FAILED"
    assert broken_row["why"] == "RuntimeError: base_train exited 3: base_train: error: no shards in /x"
    assert (tmp_path / "logs" / "broken.log").read_text().count("noise") == 1  # the whole output kept
    assert fine_row["status"] == "ok" and fine_row["value"] == 1


def test_gpu_profile_refuses_a_machine_without_cuda(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the GPU profile would run")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "g.json")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "no CUDA device" in proc.stderr
    assert not (tmp_path / "g.json").exists()


@pytest.mark.parametrize("profile", ["gpu", "smoke"])
def test_each_profile_preset_is_a_valid_two_cell_preset(profile, tmp_path):
    from nanochat_core.tasks.registry import EVAL_TASKS
    from nanochat_pipeline.presets import load_preset

    ga = load_script()
    path = tmp_path / f"{profile}.toml"
    path.write_text(ga.PROFILES[profile]["preset"])
    preset = load_preset(str(path))
    assert len(preset.depth_keys) * len(preset.flops_keys) == 2
    assert preset.train["device_type"] == ga.PROFILES[profile]["device"]
    assert all(task in EVAL_TASKS for task in preset.evaluation["chat_tasks"].split("|"))
