"""The scaling-law schedule: one run per grid cell that is missing or unsynced, none for the rest."""

import dagster as dg

from nanochat_pipeline.presets import Preset
from nanochat_pipeline.staleness import cells_needing_run


def build_scaling_schedule(preset: Preset, partitions, grid_job) -> dg.ScheduleDefinition:
    @dg.schedule(name="scaling_grid_schedule", job=grid_job, cron_schedule=preset.schedule_cron,
                 default_status=dg.DefaultScheduleStatus.STOPPED,
                 description=f"Fill in the {preset.name} grid: train every missing or unsynced base_model cell.")
    def scaling_grid_schedule(context: dg.ScheduleEvaluationContext):
        tick = context.scheduled_execution_time.strftime("%Y%m%dT%H%M")
        for cell in cells_needing_run(context.repository_def.asset_graph, context.instance, partitions):
            # The run key holds the tick time: re-evaluating one tick launches nothing twice, and a
            # cell still missing at the next tick gets a new run.
            yield dg.RunRequest(partition_key=cell, run_key=f"{cell}@{tick}")

    return scaling_grid_schedule
