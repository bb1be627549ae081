"""`python -m nanochat_pipeline run` as users run it: a child process on a tiny one-cell preset, its
own DAGSTER_HOME and NANOCHAT_BASE_DIR. Success, then a second run that skips everything, then a
tokenizer that fails its blocking check: the next run re-runs it (saying why) and, as it fails
again, never trains on it. A diverging preset exits non-zero naming the cell and the check."""
import os
import re
import subprocess
import sys

import dagster as dg
import pytest

from helpers import write_task_data, write_tiny_preset

pytestmark = pytest.mark.slow
CELL = "d1|1e9"
ALL_ASSETS = ["raw_corpus", "shuffled_shards", "tokenizer", "synthetic_conversations", "eval_bundle", "task_data",
              "base_model", "scaling_results", "sft_model", "eval_report"]
DIVERGING = "matrix_lr = 200.0\nembedding_lr = 3000.0\nunembedding_lr = 80.0\nscalar_lr = 5000.0\n"


def sections(task_data) -> str:
    return f"""
[sft]
max_seq_len = 256
device_batch_size = 4
total_batch_size = 1024
num_iterations = 2
eval_every = -1
eval_tokens = 256
chatcore_every = -1

[evaluation]
offline = true
task_data = "{task_data}"
chat_tasks = "GSM8K"
chat_max_problems = 1
"""


def run_cli(preset_path, base_dir):
    env = os.environ | {"NANOCHAT_BASE_DIR": str(base_dir), "DAGSTER_HOME": str(base_dir / "dagster_home"),
                        "OMP_NUM_THREADS": "1"}
    env.pop("NANOCHAT_PRESET", None)
    proc = subprocess.run([sys.executable, "-m", "nanochat_pipeline", "run", "--preset", str(preset_path)],
                          env=env, capture_output=True, text=True, timeout=900)
    return proc.returncode, proc.stdout + proc.stderr


def materializations(base_dir, asset: str) -> int:
    with dg.DagsterInstance.from_config(str(base_dir / "dagster_home")) as instance:
        return len(instance.fetch_materializations(dg.AssetKey(asset), limit=100).records)


def finished_lines(output: str) -> list[str]:
    """The main job's end-of-asset lines: '  <asset>[<cell>]: <status>...'."""
    return [line.strip() for line in output.splitlines() if re.match(r"^  [a-z_]+(\[[^]]*\])?: ", line)
            and not line.startswith("  warning:")]


def looked_at(output: str, asset: str) -> bool:
    """Whether the job started, skipped or tabulated `asset` (its lines and summary rows begin with it)."""
    return re.search(rf"^\s*{asset}\b", output, re.MULTILINE) is not None


def test_main_job_runs_skips_and_never_trains_on_a_failed_tokenizer(tmp_path):
    base = tmp_path / "base"
    task_data = write_task_data(tmp_path / "task_data", smoltalk=(8, 2), mmlu=(None, None), gsm8k=(2, 2))
    preset = write_tiny_preset(tmp_path, flops=("1e9",), extra_sections=sections(task_data))

    code, out = run_cli(preset, base)
    assert code == 0, out
    for asset in ALL_ASSETS:
        assert materializations(base, asset) == 1, (asset, out)
    assert f"  base_model[{CELL}] ...\n" in out and f"  base_model[{CELL}]: done in " in out
    csv = base / "pipeline" / "tiny" / "scaling_laws_results_tiny" / "results.csv"
    assert csv.is_file() and len(csv.read_text().splitlines()) == 2  # header + the one cell
    assert (base / "pipeline" / "tiny" / "report" / "d1_1e9" / "report.md").is_file()

    code, out = run_cli(preset, base)
    assert code == 0, out
    lines = finished_lines(out)
    assert len(lines) == len(ALL_ASSETS) and all(": up to date" in line for line in lines), out
    assert " ...\n" not in out  # nothing started

    # A tokenizer that fails its blocking check (a byte-level vocabulary; its files deleted so it re-runs).
    bad = write_tiny_preset(tmp_path, vocab_size=265, flops=("1e9",), extra_sections=sections(task_data))
    for f in (base / "pipeline" / "tiny" / "tokenizer").iterdir():
        f.unlink()
    code, out = run_cli(bad, base)
    assert code == 1 and "  tokenizer (missing on disk: " in out and "  tokenizer: FAILED" in out, out
    assert "  tokenizer failed: its last blocking check bytes_per_token_above_floor failed: " in out, out
    assert not looked_at(out, "base_model")

    code, out = run_cli(bad, base)  # the tokenizer is materialized and in sync, but its check failed
    assert code == 1, out
    assert "  tokenizer (its last blocking check bytes_per_token_above_floor failed: " in out, out
    assert not looked_at(out, "base_model") and not looked_at(out, "sft_model")
    assert materializations(base, "base_model") == 1 and materializations(base, "tokenizer") == 3


def test_diverging_preset_exits_non_zero_naming_cell_and_check(tmp_path):
    base = tmp_path / "base"
    preset = write_tiny_preset(tmp_path, name="diverging", flops=("3e8",), extra_train=DIVERGING,  # ~7 steps
                               extra_sections="[evaluation]\noffline = true\n")
    label = "base_model[d1|3e8]"
    for started in (f"  {label} ...", f"  {label} (its last blocking check finite_loss_and_val_bpb failed: "):
        code, out = run_cli(preset, base)
        assert code == 1 and started in out, out
        assert f"  {label}: FAILED" in out, out
        assert f"  {label} failed: its last blocking check finite_loss_and_val_bpb failed: " in out, out
        assert not looked_at(out, "scaling_results") and not looked_at(out, "sft_model")  # stopped before them
