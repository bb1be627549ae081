"""Declared cells: the preset's grid plus the ladder's cells, never the rest of the depth x budget
product. A depth the ladder adds for one budget is a partition of every budget; the schedule and the
automation sensor must still request it for its own budget only."""
import datetime

import dagster as dg
import pytest

from helpers import DATA_ASSETS, materialize, tiny_defs, write_tiny_preset
from nanochat_pipeline.presets.ladder_cells import add_ladder_cells
from nanochat_pipeline.partitions import declared_cells, declared_cells_note, grid_partitions
from nanochat_pipeline.presets import load_preset

BASE = dg.AssetKey("base_model")
PRESET_GRID = {"d1|2e9", "d2|2e9", "d1|4e9", "d2|4e9"}
LADDER_CELL = "d3|4e9"          # added by the ladder for the 4e9 budget only
NOT_DECLARED = "d3|2e9"          # a partition (the product) that nobody asked for


@pytest.fixture
def laddered_preset(tmp_base_dir, tmp_path):
    path = write_tiny_preset(tmp_path, depths=(1, 2), flops=("2e9", "4e9"))
    preset = load_preset(str(path))
    add_ladder_cells(preset.root, [{"depth": 3, "flops": "4e9", "why": "budget 4e9: minimum at d2"}])
    return path, preset


def test_declared_cells_are_the_grid_and_the_ladders_cells_only(laddered_preset):
    _, preset = laddered_preset
    cells = declared_cells(preset)
    assert set(cells) == PRESET_GRID | {LADDER_CELL} and len(cells) == 5 and cells[-1] == LADDER_CELL
    assert NOT_DECLARED in grid_partitions(preset).get_partition_keys()  # the product has it
    note = declared_cells_note(preset)
    assert note.startswith("5 of the 6 depth x budget partitions are declared cells") and note.endswith(NOT_DECLARED)


def schedule_requests(defs, instance) -> list[str]:
    when = datetime.datetime(2026, 12, 6, 3, 0, tzinfo=datetime.timezone.utc)
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=when,
                                   repository_def=defs.get_repository_def()) as ctx:
        result = defs.get_schedule_def("scaling_grid_schedule").evaluate_tick(ctx)
    return sorted(r.partition_key for r in result.run_requests or [])


def test_the_schedule_requests_a_ladder_depth_for_its_own_budget_only(laddered_preset):
    path, preset = laddered_preset
    defs, _ = tiny_defs(path)
    with dg.instance_for_test() as instance:
        requested = schedule_requests(defs, instance)
    assert requested == sorted(PRESET_GRID | {LADDER_CELL})  # every declared cell is missing: all requested
    assert NOT_DECLARED not in requested
    description = defs.resolve_asset_graph().get(BASE).description
    assert "5 of the 6 depth x budget partitions are declared cells" in description and NOT_DECLARED in description


@pytest.mark.slow
def test_the_automation_sensor_requests_declared_cells_only(laddered_preset):
    path, _ = laddered_preset
    defs, _ = tiny_defs(path)
    with dg.instance_for_test() as instance:
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)  # a first tick, nothing yet
        assert materialize(defs, instance, DATA_ASSETS).success  # a new tokenizer: eager wants every cell
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
        requested = sorted(str(k) for k in result.get_requested_partitions(BASE))
    assert requested == sorted(PRESET_GRID | {LADDER_CELL})


def test_status_marks_the_partitions_nobody_declared(laddered_preset):
    from nanochat_pipeline.cli.status import read_status, render

    path, preset = laddered_preset
    defs, _ = tiny_defs(path)
    with dg.instance_for_test() as instance:
        status = read_status(defs, preset, instance)
        text = render(status)
    assert status.declared == PRESET_GRID | {LADDER_CELL}
    [d3_row] = [line for line in text.splitlines() if line.lstrip().startswith("d3 ")]
    assert d3_row.split() == ["d3", "missing", "*", "missing"]  # 2e9: not declared (marked); 4e9: the ladder's
    assert "declared by neither the preset nor the ladder" in text
