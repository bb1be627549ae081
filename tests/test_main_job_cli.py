"""`python -m nanochat_pipeline run` as users run it: a child process on a tiny one-cell preset, its
own DAGSTER_HOME and NANOCHAT_BASE_DIR. Success, then a second run that skips everything (the shared
tiny history of main_job_runs.py), then a tokenizer that fails its blocking check: the next run re-runs
it (saying why) and, as it fails again, never trains on it. A diverging preset exits non-zero naming
the cell and the check."""
import re

import dagster as dg
import pytest

from helpers import write_tiny_preset
from main_job_runs import TINY_ASSETS, TINY_CELL, TINY_CHAT, TINY_TAG, run_main_job

pytestmark = pytest.mark.slow
CELL = TINY_CELL
ALL_ASSETS = TINY_ASSETS
DIVERGING = "matrix_lr = 200.0\nembedding_lr = 3000.0\nunembedding_lr = 80.0\nscalar_lr = 5000.0\n"


def run_cli(preset_path, base_dir):
    """A run with its own DAGSTER_HOME under the base folder."""
    return run_main_job(preset_path, base_dir, dagster_home=base_dir / "dagster_home")


def materializations(dagster_home, asset: str) -> int:
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        return len(instance.fetch_materializations(dg.AssetKey(asset), limit=100).records)


def finished_lines(output: str) -> list[str]:
    """The main job's end-of-asset lines: '  <asset>[<cell>]: <status>...'."""
    return [line.strip() for line in output.splitlines() if re.match(r"^  [a-z_]+(\[[^]]*\])?: ", line)
            and not line.startswith("  warning:")]


def looked_at(output: str, asset: str) -> bool:
    """Whether the job started, skipped or tabulated `asset` (its lines and summary rows begin with it)."""
    return re.search(rf"^\s*{asset}\b", output, re.MULTILINE) is not None


@pytest.mark.timeout(1800)  # the first test to ask for the shared history makes it: three runs
def test_main_job_runs_then_skips(tiny_main_job):
    """The shared tiny history (main_job_runs.py): its second run finished the cell the first was
    interrupted in and ran the rest; its third found everything up to date."""
    runs = tiny_main_job
    code, out = runs.resumed
    assert code == 0, out
    for asset in ALL_ASSETS:  # the interrupted run recorded none of them twice, and no cell
        assert materializations(runs.dagster_home, asset) == 1, (asset, out)
    assert f"  base_model[{CELL}] ...\n" in out and f"  base_model[{CELL}]: done in " in out
    csv = runs.root / "scaling_laws_results_tiny" / "results.csv"
    assert csv.is_file() and len(csv.read_text().splitlines()) == 2  # header + the one cell
    assert (runs.root / "report" / TINY_TAG / "report.md").is_file()

    code, out = runs.again
    assert code == 0, out
    lines = finished_lines(out)
    assert len(lines) == len(ALL_ASSETS) and all(": up to date" in line for line in lines), out
    assert " ...\n" not in out  # nothing started


def test_main_job_never_trains_on_a_failed_tokenizer(tiny_main_job, tmp_path):
    """A tokenizer that fails its blocking check (a byte-level vocabulary; its files deleted so it
    re-runs), on a copy of the shared tiny history: the same preset but for the vocabulary."""
    base = tiny_main_job.copy_base(tmp_path / "base")
    home = base / "pipeline" / "dagster_home"
    bad = write_tiny_preset(tiny_main_job.preset.parent, vocab_size=265, flops=("4e9",), extra_sections=TINY_CHAT)
    for f in (base / "pipeline" / "tiny" / "tokenizer").iterdir():
        f.unlink()
    code, out = run_main_job(bad, base)
    assert code == 1 and "  tokenizer (missing on disk: " in out and "  tokenizer: FAILED" in out, out
    assert "  tokenizer failed: its last blocking check bytes_per_token_above_floor failed: " in out, out
    assert not looked_at(out, "base_model")

    code, out = run_main_job(bad, base)  # the tokenizer is materialized and in sync, but its check failed
    assert code == 1, out
    assert "  tokenizer (its last blocking check bytes_per_token_above_floor failed: " in out, out
    assert not looked_at(out, "base_model") and not looked_at(out, "sft_model")
    assert materializations(home, "base_model") == 1 and materializations(home, "tokenizer") == 3


def test_a_tokenizer_remade_in_the_run_makes_the_cell_unsynced_in_that_run(tiny_main_job, tmp_path):
    """The job reads the cells' state before the data assets run (whether to start the queue) and again
    when it reaches the grid: a tokenizer re-made in between (another vocabulary, its files deleted) must
    show there, not the "up to date" of the first reading."""
    base = tiny_main_job.copy_base(tmp_path / "base")
    other = write_tiny_preset(tiny_main_job.preset.parent, vocab_size=352, flops=("4e9",), extra_sections=TINY_CHAT)
    for f in (base / "pipeline" / "tiny" / "tokenizer").iterdir():
        f.unlink()
    code, out = run_main_job(other, base)
    assert code == 0, out
    assert f"  base_model[{CELL}] (unsynced: " in out and f"  base_model[{CELL}]: done" in out, out
    assert materializations(base / "pipeline" / "dagster_home", "base_model") == 2  # the history's, and this one


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
