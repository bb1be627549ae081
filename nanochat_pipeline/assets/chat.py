"""synthetic_conversations -> sft_model[depth|flops].

synthetic_conversations uses the core's offline generator unless the preset asks for the API one
(which needs OPENROUTER_API_KEY and the network).
sft_model fine-tunes a cell's base checkpoint with the core's chat_sft in a Pipes child, in the
same training pool as base_model, resuming an interrupted run from its checkpoint.
"""

import json
from typing import Optional

import dagster as dg

from nanochat_core.common import settings
from nanochat_core.synthetic.generate import default_output
from nanochat_core.common.file_hash import files_sha256
from nanochat_pipeline.checks import BASE_MODEL_CHECKS, SFT_MODEL_CHECKS, built_on_base_check, reported_loads_check
from nanochat_pipeline.children import SFT_CHILD_MODULE
from nanochat_pipeline.instance.home import TRAINING_POOL
from nanochat_pipeline.launch.training_run import launch_training_child
from nanochat_pipeline.partitions import cell_from_key
from nanochat_pipeline.presets import Preset
from nanochat_pipeline.presets.network import child_env
from nanochat_pipeline.presets.paths import device_type, task_data_dir
from nanochat_pipeline.presets.run_config import effective_settings, settings_metadata
from nanochat_pipeline.staleness import AUTOMATION, require_checks_passed, require_files

SYNTHETIC_DEFAULTS = {"num": 1000, "seed": 42, "backend": "offline"}


class SyntheticConfig(dg.Config):
    """synthetic_conversations' settings for one run (the preset's [synthetic] keys); None = the preset's."""

    num: Optional[int] = None
    seed: Optional[int] = None
    backend: Optional[str] = None  # offline or api
    model: Optional[str] = None  # api: the model name
    base_url: Optional[str] = None  # api: an OpenAI-compatible base URL
    workers: Optional[int] = None  # api: parallel requests


class SftConfig(dg.Config):
    """chat_sft flags for one run (python names); None = the preset's [sft] value, else chat_sft's default.
    The cell's tags, the identity file and the task data always come from the pipeline."""

    device_type: Optional[str] = None
    num_iterations: Optional[int] = None
    max_seq_len: Optional[int] = None
    device_batch_size: Optional[int] = None
    total_batch_size: Optional[int] = None
    embedding_lr: Optional[float] = None
    unembedding_lr: Optional[float] = None
    matrix_lr: Optional[float] = None
    init_lr_frac: Optional[float] = None
    warmup_ratio: Optional[float] = None
    warmdown_ratio: Optional[float] = None
    final_lr_frac: Optional[float] = None
    mmlu_epochs: Optional[int] = None
    gsm8k_epochs: Optional[int] = None
    arithmetic_epochs: Optional[int] = None
    seed: Optional[int] = None
    eval_every: Optional[int] = None
    eval_tokens: Optional[int] = None
    chatcore_every: Optional[int] = None
    save_every: Optional[int] = None


def build_chat_assets(preset: Preset, partitions: dg.MultiPartitionsDefinition, base_model_asset, task_data_asset) -> list:
    root = preset.root
    path = default_output(root)  # where gen_synthetic_data writes under a base dir

    @dg.asset(group_name="chat", code_version="1", automation_condition=AUTOMATION,
              description="Synthetic identity conversations (JSONL) for SFT: the offline generator, or an "
                          "OpenAI-compatible API with [synthetic] backend = \"api\" (OPENROUTER_API_KEY).")
    def synthetic_conversations(context: dg.AssetExecutionContext, config: SyntheticConfig) -> dg.MaterializeResult:
        from nanochat_core.synthetic import generate_conversations

        s = SYNTHETIC_DEFAULTS | effective_settings(preset.synthetic, config)
        backend = s["backend"]
        if backend not in ("offline", "api"):
            raise dg.Failure(f"synthetic_conversations: backend {backend!r} is neither 'offline' nor 'api'")
        api = {k: s[k] for k in ("model", "base_url", "workers") if k in s}
        # The API costs money and time: an interrupted run continues (append) instead of starting over.
        stats = generate_conversations(num=int(s["num"]), output=path, backend=backend,
                                       append=backend == "api", seed=int(s["seed"]), show_progress=False,
                                       log=context.log.info, **api)
        return dg.MaterializeResult(metadata={"conversations": stats["total_lines"], "path": dg.MetadataValue.path(str(path))}
                                    | settings_metadata(s),
                                    data_version=dg.DataVersion(files_sha256([path])))

    @dg.asset(group_name="chat", code_version="1", deps=[base_model_asset, synthetic_conversations, task_data_asset],
              partitions_def=partitions, pool=TRAINING_POOL, check_specs=SFT_MODEL_CHECKS,
              description="The chat model of one cell: chat_sft on its base checkpoint, through Pipes.")
    def sft_model(context: dg.AssetExecutionContext, config: SftConfig,
                  pipes_subprocess_client: dg.PipesSubprocessClient) -> dg.MaterializeResult:
        cell = cell_from_key(partitions, context.partition_key)
        base_dir = settings.base_checkpoints_dir(root) / cell.model_tag
        require_files("sft_model", [base_dir], "base_model")
        require_checks_passed("sft_model", context.instance, BASE_MODEL_CHECKS, context.partition_key)
        ckpt_dir = settings.chatsft_checkpoints_dir(root) / cell.model_tag
        flags = effective_settings({"device_type": device_type(preset)} | preset.sft, config)
        result, step = launch_training_child(
            context, pipes_subprocess_client, preset, SFT_CHILD_MODULE, ckpt_dir, f"SFT of {cell.model_tag}",
            ["--model-tag", cell.model_tag, "--identity", str(path), "--task-data", str(task_data_dir(preset)),
             "--sft-json", json.dumps(flags)], child_env(preset))
        return dg.MaterializeResult(metadata=dict(result.metadata or {}) | settings_metadata(flags),
                                    data_version=result.data_version,
                                    check_results=[reported_loads_check(result, "sft_checkpoint_loads"),
                                                   built_on_base_check(ckpt_dir, step, base_dir, cell.model_tag)])

    return [synthetic_conversations, sft_model]
