"""The scaling-law schedule: one run per declared grid cell (the preset's grid and the ladder's cells,
never the rest of the depth x budget product) that is missing or unsynced, none for the rest, and
none on a tokenizer (or any upstream) whose last blocking check failed."""

import dagster as dg

from nanochat_pipeline.partitions import declared_cells
from nanochat_pipeline.presets import Preset
from nanochat_pipeline.staleness import plan_cells


def build_scaling_schedule(preset: Preset, partitions, grid_job) -> dg.ScheduleDefinition:
    @dg.schedule(name="scaling_grid_schedule", job=grid_job, cron_schedule=preset.schedule_cron,
                 default_status=dg.DefaultScheduleStatus.STOPPED,
                 description=f"Fill in the {preset.name} grid: train every missing or unsynced declared base_model cell, "
                             "never on an upstream whose blocking check failed, and never again a cell whose "
                             "last run failed its checks for the same code and data.")
    def scaling_grid_schedule(context: dg.ScheduleEvaluationContext):
        tick = context.scheduled_execution_time.strftime("%Y%m%dT%H%M")
        cells, skipped = plan_cells(context.repository_def.asset_graph, context.instance, partitions)
        declared = set(declared_cells(preset))  # read at each tick: the ladder may have added cells
        cells = [c for c in cells if c in declared]
        skipped = {c: why for c, why in skipped.items() if c in declared}
        for cell, why in skipped.items():
            context.log.warning(f"cell {cell} skipped: {why}")  # the tick's log in the UI
        if not cells:
            reasons = "; ".join(f"{cell}: {why}" for cell, why in skipped.items())
            return dg.SkipReason(f"no cell to run. {reasons}" if reasons else "every cell is up to date")
        # The run key holds the tick time: re-evaluating one tick launches nothing twice, and a
        # cell still missing at the next tick gets a new run.
        return [dg.RunRequest(partition_key=cell, run_key=f"{cell}@{tick}") for cell in cells]

    return scaling_grid_schedule
