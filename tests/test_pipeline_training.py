"""A tiny cell through the real Pipes subprocess, unsynced detection, the schedule, blocking checks
and bad input, on a real (temporary) Dagster instance."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import dagster as dg
from dagster._core.definitions.data_version import StaleStatus

from nanochat_pipeline.presets.paths import results_csv
from nanochat_core.common.file_hash import files_sha256
from nanochat_pipeline.staleness import stale_resolver
from nanochat_core.common import settings
from nanochat_core.scaling.results_csv import SCALING_COLUMNS, read_scaling_csv
from helpers import (DATA_ASSETS, failure_messages, latest_materialization, materialize, tiny_defs,
                     write_tiny_preset)

pytestmark = pytest.mark.slow
CELL, OTHER = "d1|2e9", "d1|4e9"


@pytest.fixture
def tiny(tmp_base_dir, tmp_path):
    preset_path = write_tiny_preset(tmp_path)
    defs, preset = tiny_defs(preset_path)
    with dg.instance_for_test() as instance:
        assert materialize(defs, instance, DATA_ASSETS).success
        yield defs, preset, instance, tmp_path


def status(defs, instance, asset, partition=None):
    return stale_resolver(defs.resolve_asset_graph(), instance).get_status(dg.AssetKey(asset), partition)


MATERIALIZE_IN_A_FRESH_PROCESS = """
import json, sys
import dagster as dg
sys.path.insert(0, {tests!r})
from helpers import materialize, tiny_defs
defs, _ = tiny_defs({preset!r})
with dg.DagsterInstance.from_config({home!r}) as instance:
    result = materialize(defs, instance, ["base_model"], {cell!r})
print(json.dumps({{"success": result.success, "torch_imported": "torch" in sys.modules,
                  "checks": {{e.check_name: [e.passed, e.description] for e in result.get_asset_check_evaluations()}}}}))
"""


def test_cell_trains_through_pipes_and_feeds_the_csv(tiny):
    defs, preset, instance, tmp_path = tiny
    # In a process of its own, as a queued run's worker: it must not import torch (~2 s of CPU per cell);
    # the child does the checkpoint's load check and reports it over Pipes.
    script = MATERIALIZE_IN_A_FRESH_PROCESS.format(tests=str(Path(__file__).parent), preset=str(preset.path),
                                                   home=instance.root_directory, cell=CELL)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    outcome = json.loads(run.stdout.strip().splitlines()[-1])
    assert (outcome["success"], outcome["torch_imported"]) == (True, False), outcome
    assert {name: passed for name, (passed, _) in outcome["checks"].items()} == {
        "finite_loss_and_val_bpb": True, "checkpoint_loads": True}, outcome
    mat = latest_materialization(instance, "base_model", CELL)
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert math.isfinite(meta["val_bpb"]) and meta["val_bpb"] > 0
    assert meta["depth"] == 1 and meta["flops_budget"] == 2e9
    assert meta["tokens_trained"] == meta["num_iterations"] * 256
    assert "data:image/png;base64," in meta["loss_curve"]
    ckpt = settings.base_checkpoints_dir(preset.root) / "d1_2e9"
    model_file = ckpt / f"model_{meta['num_iterations']:06d}.pt"
    # the data version is the checkpoint's content hash, reported by the child over Pipes
    assert mat.tags["dagster/data_version"] == files_sha256([model_file])
    assert outcome["checks"]["checkpoint_loads"][1] == f"loaded {model_file}"  # the child read it back

    assert materialize(defs, instance, ["scaling_results"]).success
    rows = read_scaling_csv(results_csv(preset))
    assert results_csv(preset).read_text().splitlines()[0].split(",") == SCALING_COLUMNS
    assert len(rows) == 1 and rows[0]["depth"] == 1 and rows[0]["val_bpb"] == pytest.approx(meta["val_bpb"])
    assert rows[0]["core_score"] is None  # no CORE was computed for the cell: empty, never faked
    # the fit runs on whatever the grid holds; one cell brackets nothing, and the fit says so (verdict first)
    csv_dir = results_csv(preset).parent
    assert (csv_dir / "fit.json").is_file() and (csv_dir / "isoflop.png").is_file()
    scaling = {k: v.value for k, v in latest_materialization(instance, "scaling_results").metadata.items()}
    assert list(scaling)[0] == "verdict" and scaling["verdict"].startswith("no credible law")
    assert "minimum at the smallest depth tried (d1)" in scaling["fit"] and "data:image/png;base64," in scaling["isoflop"]
    assert "optimal_ratio" not in scaling
    assert {k: rows[0][k] for k in ("aspect_ratio", "max_seq_len")} == {k: preset.train[k] for k in ("aspect_ratio", "max_seq_len")}


def test_unsynced_follows_tokenizer_content_and_the_schedule_requests_exactly_missing_and_unsynced_cells(tiny):
    """(merged: test_unsynced_follows_tokenizer_content and test_schedule_requests_exactly_missing_and_unsynced_cells,
    which trained the same cell and changed the tokenizer the same way)"""
    defs, preset, instance, tmp_path = tiny
    assert materialize(defs, instance, ["base_model"], CELL).success
    assert status(defs, instance, "base_model", CELL) == StaleStatus.FRESH
    schedule = defs.get_schedule_def("scaling_grid_schedule")
    import datetime
    when = datetime.datetime(2026, 12, 6, 3, 0, tzinfo=datetime.timezone.utc)

    def requested(d):
        # As a context manager: the context enters an instance of its own and resets Dagster's current
        # defs-state storage on exit; left open, a later repository build met a collected instance.
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=when,
                                       repository_def=d.get_repository_def()) as ctx:
            return schedule.evaluate_tick(ctx).run_requests

    runs = requested(defs)
    assert [r.partition_key for r in runs] == [OTHER]  # CELL is up to date
    assert runs[0].run_key == f"{OTHER}@20261206T0300"
    assert [r.run_key for r in requested(defs)] == [runs[0].run_key]  # same tick, same key: idempotent
    # Identical content (same corpus, same settings): the cell stays in sync.
    assert materialize(defs, instance, ["tokenizer"]).success
    assert status(defs, instance, "base_model", CELL) == StaleStatus.FRESH
    # Other content (another vocabulary size, same preset name and folder): the cell goes unsynced.
    changed, _ = tiny_defs(write_tiny_preset(tmp_path, vocab_size=300))
    assert materialize(changed, instance, ["tokenizer"]).success
    assert status(changed, instance, "base_model", CELL) == StaleStatus.STALE
    assert sorted(r.partition_key for r in requested(changed)) == [CELL, OTHER]  # CELL now unsynced


def test_failed_blocking_check_stops_downstream(tmp_base_dir, tmp_path):
    # 265 tokens = the 256 bytes + 9 specials: no merges, ~1 byte/token, below the check's floor.
    defs, _ = tiny_defs(write_tiny_preset(tmp_path, vocab_size=265))
    with dg.instance_for_test() as instance:
        assert materialize(defs, instance, ["raw_corpus", "shuffled_shards"]).success
        result = materialize(defs, instance, ["tokenizer", "base_model"], CELL, raise_on_error=False)
        assert not result.success
        assert latest_materialization(instance, "tokenizer") is not None  # recorded, check failed
        assert latest_materialization(instance, "base_model", CELL) is None  # never ran
        failed = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
        assert failed == {"bytes_per_token_above_floor"}


def test_missing_tokenizer_file_fails_clearly(tiny):
    defs, preset, instance, _ = tiny
    (settings.tokenizer_dir(preset.root) / "tokenizer.pkl").unlink()
    result = materialize(defs, instance, ["base_model"], CELL, raise_on_error=False)
    assert not result.success
    assert "missing on disk" in failure_messages(result) and "Materialize `tokenizer` again" in failure_messages(result)
    assert latest_materialization(instance, "base_model", CELL) is None


def test_crashing_child_fails_clearly_and_records_nothing(tiny):
    defs, _, instance, _ = tiny
    config = {"ops": {"base_model": {"config": {"device_type": "no-such-device"}}}}
    result = materialize(defs, instance, ["base_model"], CELL, raise_on_error=False, run_config=config)
    assert not result.success
    assert "training d1_2e9 failed" in failure_messages(result)
    assert latest_materialization(instance, "base_model", CELL) is None


def test_two_process_cell_runs_under_torchrun_and_reports_once(tmp_base_dir, tmp_path):
    """nproc_per_node = 2: the cell trains under torchrun (gloo on CPU); only rank 0 opens Pipes."""
    defs, preset = tiny_defs(write_tiny_preset(tmp_path, extra_train="nproc_per_node = 2\n"))
    with dg.instance_for_test() as instance:
        assert materialize(defs, instance, DATA_ASSETS).success
        # 2 rows x 64 tokens x 2 processes: the preset's batch of 256 tokens in one micro-step each
        two_rows = {"ops": {"base_model": {"config": {"device_batch_size": 2}}}}
        result = materialize(defs, instance, ["base_model"], CELL, raise_on_error=False, run_config=two_rows)
        assert result.success, failure_messages(result)
        assert len(result.asset_materializations_for_node("base_model")) == 1
        meta = {k: v.value for k, v in latest_materialization(instance, "base_model", CELL).metadata.items()}
        assert math.isfinite(meta["val_bpb"])
    ckpt = settings.base_checkpoints_dir(preset.root) / "d1_2e9"
    step = meta["num_iterations"]
    # one optimizer shard per process proves two ranks trained
    assert sorted(p.name for p in ckpt.glob(f"optim_{step:06d}_rank*.pt")) == [
        f"optim_{step:06d}_rank0.pt", f"optim_{step:06d}_rank1.pt"]
