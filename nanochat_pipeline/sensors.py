"""The automation sensor: evaluates the assets' automation conditions (eager on new upstream data
or a code version change). Off by default: turn it on in the UI (Automation tab) when wanted.

base_model's condition is limited to the declared cells (partitions.declared_cells): the grid's
partitions are a product, and eager() on a new tokenizer would otherwise train every depth at every
budget, including a depth the ladder added for one budget only. That limit is Python code (Dagster's
arbitrary-Python conditions), so the sensor evaluates in the code server (use_user_code_server).

scaling_ladder_sensor drives the scaling ladder (ladder.py: which cells the latest fit proposes,
within the preset's [ladder] bounds); `run --ladder` (cli/ladder_run.py) drives the same steps.
"""
from __future__ import annotations

import warnings

import dagster as dg

from nanochat_pipeline.ladder import (BASE_MODEL, FINGERPRINT_TAG, fingerprint, fit_path, grid_flops, known_cells, next_step,
                                     read_fit, record_ladder_cells)
from nanochat_pipeline.presets import Preset


def build_automation_sensor() -> dg.AutomationConditionSensorDefinition:
    with warnings.catch_warnings():  # use_user_code_server is beta in Dagster 1.13; said here, not at every load
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.AutomationConditionSensorDefinition(
            "nanochat_automation_sensor", target=dg.AssetSelection.all(),
            default_status=dg.DefaultSensorStatus.STOPPED, use_user_code_server=True)


def build_ladder_sensor(preset: Preset, partitions: dg.MultiPartitionsDefinition, grid_job) -> dg.SensorDefinition:
    @dg.sensor(name="scaling_ladder_sensor", job=grid_job, minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.STOPPED,
               description="Scaling ladder: request the cells the latest fit proposes, within [ladder] bounds, "
                           "until the law is credible.")
    def scaling_ladder_sensor(context: dg.SensorEvaluationContext):
        fit = read_fit(preset)
        if fit is None:
            return dg.SkipReason(f"no fit yet ({fit_path(preset)}): materialize scaling_results first")
        code_version = context.repository_def.asset_graph.get(BASE_MODEL).code_version
        print_ = fingerprint(preset, context.instance, code_version)
        grid = set(partitions.get_partition_keys())
        step = next_step(fit, preset, known_cells(context.instance, print_), grid_flops(partitions))
        if step.stop:
            return dg.SkipReason(f"ladder stopped: {step.stop}")
        record_ladder_cells(preset, step.cells)
        requests = [dg.RunRequest(partition_key=c["key"], run_key=f"ladder:{c['key']}:{print_}",
                                  tags={FINGERPRINT_TAG: print_}) for c in step.cells if c["key"] in grid]
        waiting = [c["key"] for c in step.cells if c["key"] not in grid]
        note = ((f"proposed, added to the grid, requested after the code location reloads: {', '.join(waiting)}. "
                 if waiting else "") + (f"held back: {'; '.join(step.held_back)}" if step.held_back else ""))
        if requests:
            if note:
                context.log.info(note)
            return dg.SensorResult(run_requests=requests)
        return dg.SkipReason(note)

    return scaling_ladder_sensor
