"""synthetic_conversations -> sft_model[depth|flops].

synthetic_conversations uses the core's offline generator unless the preset asks for the API one
(which needs OPENROUTER_API_KEY and the network).
sft_model fine-tunes a cell's base checkpoint with the core's chat_sft in a Pipes child, in the
same training pool as base_model, resuming an interrupted run from its checkpoint.
"""

import json
from pathlib import Path

import dagster as dg

from nanochat_core.common import settings
from nanochat_core.synthetic.generate import default_output
from nanochat_core.common.file_hash import files_sha256
from nanochat_pipeline.assets.data import AUTOMATION
from nanochat_pipeline.assets.eval_inputs import device_type, task_data_dir
from nanochat_pipeline.assets.training import BASE_MODEL_CHECKS, TRAINING_POOL, checkpoint_loads_check, run_training_child
from nanochat_pipeline.children import SFT_CHILD_MODULE
from nanochat_pipeline.partitions import cell_from_key
from nanochat_pipeline.presets import Preset
from nanochat_pipeline.required_files import require_files
from nanochat_pipeline.staleness import require_checks_passed

SFT_MODEL_CHECKS = [dg.AssetCheckSpec(n, asset="sft_model", blocking=True)
                    for n in ("sft_checkpoint_loads", "sft_built_on_cell_base")]


def built_on_base_check(ckpt_dir: Path, step: int, base_dir: Path, tag: str) -> dg.AssetCheckResult:
    """sft_built_on_cell_base: the SFT checkpoint's meta names this cell's base (tag and last step)
    and has its architecture; a checkpoint fine-tuned from another cell's base would pass the load
    check yet put the wrong model's numbers in this cell's report card."""
    from nanochat_core.model import checkpoint as ckpt

    meta, base_step = ckpt.load_meta(ckpt_dir, step), ckpt.find_last_step(base_dir)
    base_config = ckpt.load_meta(base_dir, base_step)["model_config"]
    where = ckpt.meta_path(ckpt_dir, step)
    problems = []
    if (meta.get("base_model_tag"), meta.get("base_step")) != (tag, base_step):
        problems.append(f"fine-tuned from base {meta.get('base_model_tag')!r} step {meta.get('base_step')}, "
                        f"not this cell's {tag!r} step {base_step}")
    if meta.get("model_config") != base_config:
        problems.append(f"model_config {meta.get('model_config')} differs from the base's {base_config}")
    return dg.AssetCheckResult(check_name="sft_built_on_cell_base", passed=not problems,
                               description=f"{where}: " + ("; ".join(problems) if problems else
                                                           f"built on {base_dir} step {base_step}"))


def build_chat_assets(preset: Preset, partitions: dg.MultiPartitionsDefinition, base_model_asset, task_data_asset) -> list:
    root = preset.root
    path = default_output(root)  # where gen_synthetic_data writes under a base dir

    @dg.asset(group_name="chat", code_version="1", automation_condition=AUTOMATION,
              description="Synthetic identity conversations (JSONL) for SFT: the offline generator, or an "
                          "OpenAI-compatible API with [synthetic] backend = \"api\" (OPENROUTER_API_KEY).")
    def synthetic_conversations(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        from nanochat_core.synthetic import generate_conversations

        s = preset.synthetic
        backend = s.get("backend", "offline")
        api = {k: s[k] for k in ("model", "base_url", "workers") if k in s}
        # The API costs money and time: an interrupted run continues (append) instead of starting over.
        stats = generate_conversations(num=int(s.get("num", 1000)), output=path, backend=backend,
                                       append=backend == "api", seed=int(s.get("seed", 42)), show_progress=False,
                                       log=context.log.info, **api)
        return dg.MaterializeResult(metadata={"conversations": stats["total_lines"], "path": dg.MetadataValue.path(str(path))},
                                    data_version=dg.DataVersion(files_sha256([path])))

    @dg.asset(group_name="chat", code_version="1", deps=[base_model_asset, synthetic_conversations, task_data_asset],
              partitions_def=partitions, pool=TRAINING_POOL, check_specs=SFT_MODEL_CHECKS,
              description="The chat model of one cell: chat_sft on its base checkpoint, through Pipes.")
    def sft_model(context: dg.AssetExecutionContext, pipes_subprocess_client: dg.PipesSubprocessClient) -> dg.MaterializeResult:
        cell = cell_from_key(partitions, context.partition_key)
        base_dir = settings.base_checkpoints_dir(root) / cell.model_tag
        require_files("sft_model", [base_dir], "base_model")
        require_checks_passed("sft_model", context.instance, BASE_MODEL_CHECKS, context.partition_key)
        ckpt_dir = settings.chatsft_checkpoints_dir(root) / cell.model_tag
        flags = {"device_type": device_type(preset)} | preset.sft
        result, step = run_training_child(
            context, pipes_subprocess_client, preset, SFT_CHILD_MODULE, ckpt_dir, f"SFT of {cell.model_tag}",
            ["--model-tag", cell.model_tag, "--identity", str(path), "--task-data", str(task_data_dir(preset)),
             "--sft-json", json.dumps(flags)])
        return dg.MaterializeResult(metadata=result.metadata, data_version=result.data_version,
                                    check_results=[checkpoint_loads_check("sft_checkpoint_loads", ckpt_dir, step),
                                                   built_on_base_check(ckpt_dir, step, base_dir, cell.model_tag)])

    return [synthetic_conversations, sft_model]
