"""rl_model[depth|flops]: chat_rl on a cell's SFT checkpoint, through Pipes, in the training pool.

The preset's `[rl]` table gives chat_rl's flags (python names; `task = "arithmetic"` offline) and
`rl_cells`, the cells the main job runs it for. An interrupted run resumes from its checkpoint.
Blocking checks: the loss is finite, the checkpoint loads, and no step's mean reward (nor any
pass@k) is NaN.
"""

import json
from typing import Optional

import dagster as dg

from nanochat_core.common import settings
from nanochat_pipeline.checks import RL_MODEL_CHECKS, rl_model_checks
from nanochat_pipeline.children import RL_CHILD_MODULE
from nanochat_pipeline.instance.home import TRAINING_POOL
from nanochat_pipeline.launch.training_run import launch_training_child
from nanochat_pipeline.partitions import cell_from_key
from nanochat_pipeline.presets import Preset
from nanochat_pipeline.presets.network import child_env
from nanochat_pipeline.presets.paths import device_type, task_data_dir
from nanochat_pipeline.presets.run_config import effective_settings, settings_metadata
from nanochat_pipeline.staleness import require_files

class RlConfig(dg.Config):
    """chat_rl flags for one run (python names); None = the preset's [rl] value, else chat_rl's default.
    The cell's tag and the task data always come from the pipeline."""

    device_type: Optional[str] = None
    task: Optional[str] = None  # gsm8k or arithmetic
    max_train_questions: Optional[int] = None
    num_epochs: Optional[int] = None
    num_iterations: Optional[int] = None
    examples_per_step: Optional[int] = None
    num_samples: Optional[int] = None
    device_batch_size: Optional[int] = None
    max_new_tokens: Optional[int] = None
    temperature: Optional[float] = None
    top_k: Optional[int] = None
    embedding_lr: Optional[float] = None
    unembedding_lr: Optional[float] = None
    matrix_lr: Optional[float] = None
    weight_decay: Optional[float] = None
    init_lr_frac: Optional[float] = None
    eval_every: Optional[int] = None
    eval_examples: Optional[int] = None
    save_every: Optional[int] = None


def build_rl_assets(preset: Preset, partitions: dg.MultiPartitionsDefinition, sft_model_asset, task_data_asset) -> list:
    root = preset.root

    @dg.asset(group_name="rl", code_version="1", deps=[sft_model_asset, task_data_asset], partitions_def=partitions,
              pool=TRAINING_POOL, check_specs=RL_MODEL_CHECKS,
              description="RL of one cell's chat model: chat_rl on its SFT checkpoint (the preset's [rl] task), "
                          "through Pipes.")
    def rl_model(context: dg.AssetExecutionContext, config: RlConfig,
                 pipes_subprocess_client: dg.PipesSubprocessClient) -> dg.MaterializeResult:
        cell = cell_from_key(partitions, context.partition_key)
        require_files("rl_model", [settings.chatsft_checkpoints_dir(root) / cell.model_tag], "sft_model")
        ckpt_dir = settings.chatrl_checkpoints_dir(root) / cell.model_tag
        flags = effective_settings({"device_type": device_type(preset)} | preset.rl, config)
        result, step = launch_training_child(
            context, pipes_subprocess_client, preset, RL_CHILD_MODULE, ckpt_dir, f"RL of {cell.model_tag}",
            ["--model-tag", cell.model_tag, "--task-data", str(task_data_dir(preset)), "--rl-json", json.dumps(flags)], child_env(preset))
        return dg.MaterializeResult(metadata=dict(result.metadata or {}) | settings_metadata(flags),
                                    data_version=result.data_version,
                                    check_results=rl_model_checks(result, ckpt_dir, step))

    return [rl_model]
