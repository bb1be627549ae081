"""The Dagster definitions of the active preset (NANOCHAT_PRESET, default demo); workspace.yaml loads this."""
from __future__ import annotations

import dagster as dg

from nanochat_pipeline.assets.chat import build_chat_assets
from nanochat_pipeline.assets.data import build_data_assets
from nanochat_pipeline.assets.eval_inputs import build_eval_input_assets
from nanochat_pipeline.assets.evaluation import build_evaluation_assets
from nanochat_pipeline.assets.rl import build_rl_assets
from nanochat_pipeline.assets.scaling import build_scaling_assets
from nanochat_pipeline.assets.training import build_training_assets
from nanochat_pipeline.partitions import grid_partitions
from nanochat_pipeline.presets import Preset, active_preset
from nanochat_pipeline.schedules import build_scaling_schedule
from nanochat_pipeline.sensors import build_automation_sensor, build_ladder_sensor


def build_definitions(preset: Preset) -> dg.Definitions:
    partitions = grid_partitions(preset)
    raw_corpus, shuffled_shards, tokenizer = build_data_assets(preset)
    [base_model] = build_training_assets(preset, partitions, tokenizer)
    [scaling_results] = build_scaling_assets(preset, partitions, base_model)
    eval_bundle, task_data = build_eval_input_assets(preset)
    synthetic_conversations, sft_model = build_chat_assets(preset, partitions, base_model, task_data)
    [rl_model] = build_rl_assets(preset, partitions, sft_model, task_data)
    [eval_report] = build_evaluation_assets(preset, partitions, sft_model, eval_bundle, task_data, rl_model)
    # in-process: a cell's run is one step, and a step process of its own cost each cell ~2 s more to start
    grid_job = dg.define_asset_job("scaling_grid_job", selection=[base_model], executor_def=dg.in_process_executor,
                                   description="Train base_model cells of the grid (one run per cell).")
    return dg.Definitions(
        assets=[raw_corpus, shuffled_shards, tokenizer, base_model, scaling_results, eval_bundle, task_data,
                synthetic_conversations, sft_model, rl_model, eval_report],
        jobs=[grid_job],
        schedules=[build_scaling_schedule(preset, partitions, grid_job)],
        sensors=[build_automation_sensor(), build_ladder_sensor(preset, partitions, grid_job)],
        resources={"pipes_subprocess_client": dg.PipesSubprocessClient()},
    )


preset = active_preset()
defs = build_definitions(preset)
