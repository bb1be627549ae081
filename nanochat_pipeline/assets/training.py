"""base_model[depth|flops]: one training run per grid cell, launched as a Pipes subprocess.

Per-cell hyperparameters come from the partition key (UI backfills pass no run config); the
preset's [train] table supplies the rest, and run config (BaseTrainConfig) may override both.
"""

import json
import math
from pathlib import Path
from typing import Optional

import dagster as dg
from dagster._core.errors import DagsterPipesExecutionError  # not exported at top level in 1.13

from nanochat_core.common import settings
from nanochat_pipeline.assets.data import AUTOMATION, TOKENIZER_CHECKS, tokenizer_files
from nanochat_pipeline.assets.eval_inputs import child_env
from nanochat_pipeline.children import TRAIN_CHILD_MODULE
from nanochat_pipeline.launch.runner import launch_child
from nanochat_pipeline.required_files import require_files
from nanochat_pipeline.sensors import declared_only
from nanochat_pipeline.partitions import cell_from_key, declared_cells, declared_cells_note
from nanochat_pipeline.pictures import markdown_image
from nanochat_pipeline.presets import Preset
from nanochat_pipeline.presets.run_config import effective_settings, settings_metadata
from nanochat_pipeline.staleness import require_checks_passed

TRAINING_POOL = "training"  # one training run at a time on a machine's accelerators (dagster.yaml)
BASE_MODEL_CHECKS = [dg.AssetCheckSpec(n, asset="base_model", blocking=True)
                     for n in ("finite_loss_and_val_bpb", "checkpoint_loads")]


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


def resumable_step(ckpt_dir: Path) -> int:
    """The step of an interrupted run's checkpoint (step < its horizon), or -1 to train afresh."""
    from nanochat_core.model import checkpoint as ckpt

    try:
        step = ckpt.find_last_step(ckpt_dir)
    except FileNotFoundError:
        return -1
    meta = ckpt.load_meta(ckpt_dir, step)
    if "finished" in meta:  # chat_sft says so (a one-epoch run has no fixed horizon until it ends)
        return -1 if meta["finished"] else step
    return step if step < meta.get("num_iterations", step) else -1


def cell_child_args(preset: Preset, cell, config: BaseTrainConfig) -> list[str]:
    """The train child's arguments for one grid cell (also what `manifests` writes into each pod)."""
    return ["--depth", str(cell.depth), "--target-flops", cell.flops_key, "--model-tag", cell.model_tag,
            "--train-json", json.dumps(train_overrides(preset, config))]


def checkpoint_loads_check(name: str, ckpt_dir: Path, step: int) -> dg.AssetCheckResult:
    from nanochat_core.model import checkpoint as ckpt

    try:
        ckpt.build_model(*ckpt.load_checkpoint(ckpt_dir, step)[::2], device="cpu")
        loads, why = True, f"loaded {ckpt.model_path(ckpt_dir, step)}"
    except Exception as e:  # any failure to load is what this check reports
        loads, why = False, f"{ckpt.model_path(ckpt_dir, step)} (step {step}) does not load: {type(e).__name__}: {e}"
    return dg.AssetCheckResult(check_name=name, passed=loads, description=why)


def run_training_child(context, client: dg.PipesSubprocessClient, preset: Preset, module: str, ckpt_dir: Path,
                       what: str, args: list[str]) -> tuple[dg.MaterializeResult, int]:
    """Launch a training child through Pipes (resuming an interrupted run's checkpoint); return the
    materialization it reported and the step of its last checkpoint. `what` names the run in messages."""
    resume = resumable_step(ckpt_dir)
    if resume >= 0:
        context.log.info(f"{what}: an interrupted run left a checkpoint at step {resume}; resuming from it")
    try:  # where the child runs (this machine, a pod, several pods) is the preset's [launch] table
        invocation = launch_child(context, client, preset, module, ckpt_dir.name,  # the folder is the model tag
                                  args + ["--resume-from-step", str(resume)], child_env(preset))
    except DagsterPipesExecutionError as e:
        raise dg.Failure(
            f"{what} failed ({e}). If it was cancelled, its checkpoint is kept and the next materialization of "
            "this cell resumes from it; otherwise see this step's stderr for the child's error.") from e
    from nanochat_core.model import checkpoint as ckpt  # torch: not at definitions load

    return inline_loss_curve(invocation.get_materialize_result()), ckpt.find_last_step(ckpt_dir)


def inline_loss_curve(result: dg.MaterializeResult) -> dg.MaterializeResult:
    """The child reports its loss curve as a path (small Pipes messages); the UI shows it inline."""
    metadata = dict(result.metadata or {})
    curve = metadata.get("loss_curve")
    if curve is not None:
        metadata["loss_curve"] = dg.MetadataValue.md(markdown_image(Path(getattr(curve, "value", curve)), "loss curve"))
    return dg.MaterializeResult(metadata=metadata, data_version=result.data_version)


def uniform_guess_bpb(tok_dir: Path, shards_dir: Path, max_chars: int = 200_000) -> float:
    """Bits per byte of a model that gives every token of the vocabulary the same probability, on
    the validation text: log2(vocab) bits per token over that text's bytes per token. A trained
    model must beat it; one that does not has learned nothing (or diverged)."""
    from nanochat_core.data.parquet_files import iter_shard_texts
    from nanochat_core.tokenizer.bpe import Tokenizer

    tok = Tokenizer.from_directory(tok_dir)
    text = "".join(iter_shard_texts(split="val", data_dir=shards_dir, max_chars=max_chars))
    return len(tok.encode(text)) * math.log2(tok.get_vocab_size()) / max(1, len(text.encode()))


def plausible_loss_check(metadata: dict, uniform_bpb: float) -> dg.AssetCheckResult:
    """finite_loss_and_val_bpb: final loss and val_bpb finite and above 0, val_bpb below a uniform guess."""
    def number(key):
        value = metadata.get(key)
        value = getattr(value, "value", value)
        return float(value) if isinstance(value, (int, float)) else None

    loss, bpb = number("final_loss"), number("val_bpb")
    where = metadata.get("checkpoint")
    where = getattr(where, "value", where) or "the checkpoint"
    problems = [f"{name} is {value}" for name, value in (("final_loss", loss), ("val_bpb", bpb))
                if value is None or not math.isfinite(value) or value <= 0]
    if not problems and bpb >= uniform_bpb:
        problems.append(f"val_bpb {bpb:.4f} is not below {uniform_bpb:.4f}, the bpb of a uniform guess over the "
                        "vocabulary on the same validation text")
    description = (f"{where}: " + "; ".join(problems) + " (diverged? try a smaller learning rate or longer warmup)"
                   if problems else f"{where}: val_bpb {bpb:.4f} in (0, {uniform_bpb:.4f}), final loss {loss:.4f}")
    return dg.AssetCheckResult(check_name="finite_loss_and_val_bpb", passed=not problems, description=description,
                               metadata={"final_loss": str(loss), "val_bpb": str(bpb), "uniform_guess_bpb": uniform_bpb})


def base_model_checks(metadata: dict, ckpt_dir: Path, step: int, uniform_bpb: float) -> list[dg.AssetCheckResult]:
    return [plausible_loss_check(metadata, uniform_bpb), checkpoint_loads_check("checkpoint_loads", ckpt_dir, step)]


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
        result, step = run_training_child(
            context, pipes_subprocess_client, preset, TRAIN_CHILD_MODULE, ckpt_dir, f"training {cell.model_tag}",
            cell_child_args(preset, cell, config))
        return dg.MaterializeResult(metadata=dict(result.metadata or {})
                                    | settings_metadata(train_overrides(preset, config)),
                                    data_version=result.data_version,
                                    check_results=base_model_checks(
                                        dict(result.metadata or {}), ckpt_dir, step,
                                        uniform_guess_bpb(settings.tokenizer_dir(root), settings.base_data_dir(root))))

    return [base_model]
