"""base_model[depth|flops]: one training run per grid cell, launched as a Pipes subprocess.

Per-cell hyperparameters come from the partition key (UI backfills pass no run config); the
preset's [train] table supplies the rest, and run config (BaseTrainConfig) may override both.
"""

import json
from typing import Optional

import dagster as dg

from nanochat_core.common import settings
from nanochat_pipeline.checks import BASE_MODEL_CHECKS, TOKENIZER_CHECKS, base_model_checks, uniform_guess_bpb
from nanochat_pipeline.children import TRAIN_CHILD_MODULE
from nanochat_pipeline.instance.home import TRAINING_POOL, cell_threads_env
from nanochat_pipeline.launch.training_run import launch_training_child
from nanochat_pipeline.partitions import cell_from_key, declared_cells, declared_cells_note
from nanochat_pipeline.presets import Preset
from nanochat_pipeline.presets.network import declared_env
from nanochat_pipeline.presets.paths import tokenizer_files
from nanochat_pipeline.presets.run_config import effective_settings, settings_metadata
from nanochat_pipeline.staleness import AUTOMATION, declared_only, require_checks_passed, require_files

class BaseTrainConfig(dg.Config):
    """base_train flags (nanochat's names, python spelling). None = the preset's value, else nanochat's
    default. depth, target_flops and model_tag always come from the partition key."""

    device_type: Optional[str] = None
    max_seq_len: Optional[int] = None
    device_batch_size: Optional[int] = None
    total_batch_size: Optional[int] = None
    matrix_lr: Optional[float] = None
    embedding_lr: Optional[float] = None
    unembedding_lr: Optional[float] = None
    warmup_ratio: Optional[float] = None
    warmdown_ratio: Optional[float] = None
    eval_every: Optional[int] = None
    eval_tokens: Optional[int] = None
    core_metric_every: Optional[int] = None
    save_every: Optional[int] = None


def train_overrides(preset: Preset, config: BaseTrainConfig) -> dict:
    return effective_settings(preset.train, config)


def cell_child_args(preset: Preset, cell, config: BaseTrainConfig) -> list[str]:
    """The train child's arguments for one grid cell (also what `manifests` writes into each pod)."""
    return ["--depth", str(cell.depth), "--target-flops", cell.flops_key, "--model-tag", cell.model_tag,
            "--train-json", json.dumps(train_overrides(preset, config))]


def cell_env(preset: Preset, instance) -> dict:
    """A training cell's child environment: the preset's, without probing the network (base_train reads only
    local shards and the tokenizer, so HF_HUB_OFFLINE changes nothing for it, and each queued cell's run worker
    would otherwise probe anew, up to PROBE_BUDGET_S where hosts resolve and never answer), and its threads."""
    return declared_env(preset) | cell_threads_env(instance)


def build_training_assets(preset: Preset, partitions: dg.MultiPartitionsDefinition, tokenizer_asset) -> list:
    root = preset.root

    @dg.asset(group_name="training", code_version="1", deps=[tokenizer_asset], partitions_def=partitions,
              pool=TRAINING_POOL, automation_condition=declared_only(AUTOMATION, declared_cells(preset)),
              check_specs=BASE_MODEL_CHECKS,
              description="A base GPT for one depth x FLOP-budget cell (base_train, through Pipes). "
                          + declared_cells_note(preset) + ".")
    def base_model(context: dg.AssetExecutionContext, config: BaseTrainConfig,
                   pipes_subprocess_client: dg.PipesSubprocessClient) -> dg.MaterializeResult:
        cell = cell_from_key(partitions, context.partition_key)
        require_files("base_model", tokenizer_files(settings.tokenizer_dir(root)), "tokenizer")
        require_files("base_model", [settings.base_data_dir(root) / "manifest.json"], "shuffled_shards")
        require_checks_passed("base_model", context.instance, TOKENIZER_CHECKS)
        ckpt_dir = settings.base_checkpoints_dir(root) / cell.model_tag
        result, _ = launch_training_child(
            context, pipes_subprocess_client, preset, TRAIN_CHILD_MODULE, ckpt_dir, f"training {cell.model_tag}",
            cell_child_args(preset, cell, config), cell_env(preset, context.instance))
        return dg.MaterializeResult(metadata=dict(result.metadata or {})
                                    | settings_metadata(train_overrides(preset, config)),
                                    data_version=result.data_version,
                                    check_results=base_model_checks(
                                        result, uniform_guess_bpb(settings.tokenizer_dir(root), settings.base_data_dir(root))))

    return [base_model]
