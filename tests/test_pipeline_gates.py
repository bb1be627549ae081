"""Gates across runs, on a real Dagster instance: an asset whose latest blocking check failed is not
consumed by a later run (schedule, automation sensor, the main job's up-to-date decision), a cell
that failed its own check is not retried for the same code and data, and a new, passing
materialization lifts the gate."""
import datetime

import dagster as dg
import pytest

from nanochat_pipeline.staleness import failed_blocking_check, plan_cells, run_reason
from helpers import (DATA_ASSETS, failure_messages, latest_materialization, materialize, tiny_defs,
                     write_tiny_preset)

pytestmark = pytest.mark.slow
CELL, OTHER = "d1|2e9", "d1|4e9"
TOKENIZER, BASE = dg.AssetKey("tokenizer"), dg.AssetKey("base_model")
# Learning rates ten thousand times nanochat's: the loss blows up within a few steps.
DIVERGING = "matrix_lr = 200.0\nembedding_lr = 3000.0\nunembedding_lr = 80.0\nscalar_lr = 5000.0\n"
GRID = ("1e9", "2e9")  # the diverging cell is the cheapest one
SMALL, LARGE = "d1|1e9", "d1|2e9"


def schedule_tick(defs, instance):
    when = datetime.datetime(2026, 12, 6, 3, 0, tzinfo=datetime.timezone.utc)
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=when,
                                   repository_def=defs.get_repository_def()) as ctx:
        return defs.get_schedule_def("scaling_grid_schedule").evaluate_tick(ctx)


def requested_cells(result) -> list[str]:
    return sorted(str(k) for k in result.get_requested_partitions(BASE))


def test_failed_tokenizer_is_consumed_by_nothing_until_a_passing_one_replaces_it(tmp_base_dir, tmp_path):
    # 265 tokens = 256 bytes + 9 specials: no merges, ~1 byte/token, below the 1.5 floor.
    bad, preset = tiny_defs(write_tiny_preset(tmp_path, vocab_size=265))
    graph = bad.resolve_asset_graph()
    with dg.instance_for_test() as instance:
        before = dg.evaluate_automation_conditions(defs=bad, instance=instance)  # a first tick, nothing yet
        assert not materialize(bad, instance, DATA_ASSETS, raise_on_error=False).success

        reason = run_reason(graph, instance, TOKENIZER)  # materialized and in sync, yet not up to date
        assert reason.startswith("its last blocking check bytes_per_token_above_floor failed: ")
        assert str(preset.root / "tokenizer" / "tokenizer.pkl") in reason and "bytes/token" in reason

        cells, skipped = plan_cells(graph, instance, graph.get(BASE).partitions_def)
        assert cells == [] and sorted(skipped) == [CELL, OTHER]
        assert "upstream tokenizer: its last blocking check bytes_per_token_above_floor failed" in skipped[CELL]
        tick = schedule_tick(bad, instance)
        assert tick.run_requests == [] and "bytes_per_token_above_floor failed" in tick.skip_message

        # Launched anyway (the UI, a backfill): the cell refuses to train on it, saying why.
        launched = materialize(bad, instance, ["base_model"], CELL, raise_on_error=False)
        assert not launched.success and latest_materialization(instance, "base_model", CELL) is None
        assert ("base_model: upstream tokenizer: its last blocking check bytes_per_token_above_floor failed"
                in failure_messages(launched))

        gated = dg.evaluate_automation_conditions(defs=bad, instance=instance, cursor=before.cursor)
        assert requested_cells(gated) == []  # eager alone requests both cells here: their upstream was updated

        # A new materialization (another vocabulary, same preset name and folder) passes and lifts the gate.
        good, _ = tiny_defs(write_tiny_preset(tmp_path, vocab_size=320))
        assert materialize(good, instance, ["tokenizer"]).success
        assert failed_blocking_check(graph, instance, TOKENIZER) is None
        assert plan_cells(graph, instance, graph.get(BASE).partitions_def) == ([CELL, OTHER], {})
        assert [r.partition_key for r in schedule_tick(good, instance).run_requests] == [CELL, OTHER]
        later = dg.evaluate_automation_conditions(defs=good, instance=instance, cursor=gated.cursor)
        assert requested_cells(later) == sorted([CELL, OTHER])


def test_cell_that_failed_its_check_is_not_retried_for_the_same_code_and_data(tmp_base_dir, tmp_path):
    (tmp_path / "diverging").mkdir()
    diverging, _ = tiny_defs(write_tiny_preset(tmp_path / "diverging", flops=GRID, extra_train=DIVERGING))
    graph = diverging.resolve_asset_graph()
    with dg.instance_for_test() as instance:
        assert materialize(diverging, instance, DATA_ASSETS).success
        result = materialize(diverging, instance, ["base_model"], SMALL, raise_on_error=False)
        assert not result.success
        failed = {e.check_name: e.description for e in result.get_asset_check_evaluations() if not e.passed}
        assert list(failed) == ["finite_loss_and_val_bpb"]
        assert "d1_1e9/model_" in failed["finite_loss_and_val_bpb"] and "val_bpb" in failed["finite_loss_and_val_bpb"]

        # The main job's question: not up to date, because of the check (it re-runs the cell and says why).
        assert run_reason(graph, instance, BASE, SMALL).startswith("its last blocking check finite_loss_and_val_bpb failed")
        # The schedule's: the same code and data would fail the same way; the other cell still runs.
        cells, skipped = plan_cells(graph, instance, graph.get(BASE).partitions_def)
        assert cells == [LARGE]
        assert skipped[SMALL].startswith("not run again for the same code and data: its last blocking check "
                                        "finite_loss_and_val_bpb failed")

        # Its SFT, launched by hand, refuses the diverged base.
        launched = materialize(diverging, instance, ["sft_model"], SMALL, raise_on_error=False)
        assert not launched.success and latest_materialization(instance, "sft_model", SMALL) is None
        assert ("sft_model: upstream base_model[d1|1e9]: its last blocking check finite_loss_and_val_bpb failed"
                in failure_messages(launched))

        # Sane learning rates (same preset name, so the same cell folder): a passing run clears it.
        sane, _ = tiny_defs(write_tiny_preset(tmp_path, flops=GRID))
        assert materialize(sane, instance, ["base_model"], SMALL).success
        assert failed_blocking_check(graph, instance, BASE, SMALL) is None
        assert run_reason(graph, instance, BASE, SMALL) is None
