"""The parent side of a training cell: launch its Pipes child where the preset's [launch] table says
(resuming an interrupted run's checkpoint), turn a failure into a message that says what happens to
the checkpoint, and show the child's loss curve inline. (The child side is children/pipes.py.)"""
from __future__ import annotations

from pathlib import Path

import dagster as dg
from dagster._core.errors import DagsterPipesExecutionError  # not exported at top level in 1.13

from nanochat_pipeline.launch.runner import launch_child
from nanochat_pipeline.pictures import draw_saved_curve, markdown_image


def resumable_step(ckpt_dir: Path) -> int:
    """The step of an interrupted run's checkpoint (step < its horizon), or -1 to train afresh."""
    from nanochat_core.model import checkpoint_layout as ckpt

    try:
        step = ckpt.find_last_step(ckpt_dir)
    except FileNotFoundError:
        return -1
    meta = ckpt.load_meta(ckpt_dir, step)
    if "finished" in meta:  # chat_sft says so (a one-epoch run has no fixed horizon until it ends)
        return -1 if meta["finished"] else step
    return step if step < meta.get("num_iterations", step) else -1


def launch_training_child(context, client: dg.PipesSubprocessClient, preset, module: str, ckpt_dir: Path,
                          what: str, args: list[str], env: dict) -> tuple[dg.MaterializeResult, int]:
    """Launch a training child through Pipes (resuming an interrupted run's checkpoint); return the
    materialization it reported (with the checks it reported) and the step of its last checkpoint. `what`
    names the run in messages. No torch here: a queued cell's run worker would pay ~2 s of CPU to import it."""
    from nanochat_core.model import checkpoint_layout as ckpt

    resume = resumable_step(ckpt_dir)
    if resume >= 0:
        context.log.info(f"{what}: an interrupted run left a checkpoint at step {resume}; resuming from it")
    elif removed := ckpt.remove_checkpoints(ckpt_dir):
        # Downstream reads the folder's last step: an earlier run's checkpoints at later steps than this
        # run will reach (another tokenizer gives another parameter count, hence fewer steps) would win.
        context.log.info(f"{what}: trains afresh; removed the {removed} checkpoint(s) of its earlier run in {ckpt_dir}")
    try:  # where the child runs (this machine, a pod, several pods) is the preset's [launch] table
        invocation = launch_child(context, client, preset, module, ckpt_dir.name,  # the folder is the model tag
                                  args + ["--resume-from-step", str(resume)], env)
    except DagsterPipesExecutionError as e:
        raise dg.Failure(
            f"{what} failed ({e}). If it was cancelled, its checkpoint is kept and the next materialization of "
            "this cell resumes from it; otherwise see this step's stderr for the child's error.") from e
    return inline_loss_curve(invocation.get_materialize_result()), ckpt.find_last_step(ckpt_dir)


def inline_loss_curve(result: dg.MaterializeResult) -> dg.MaterializeResult:
    """The child reports its loss curve as a path (small Pipes messages) where it saved the points; the
    picture is drawn there and the UI shows it inline."""
    metadata = dict(result.metadata or {})
    curve = metadata.get("loss_curve")
    if curve is not None:
        picture = draw_saved_curve(Path(getattr(curve, "value", curve)))
        metadata["loss_curve"] = dg.MetadataValue.md(markdown_image(picture, "loss curve"))
    return dg.MaterializeResult(metadata=metadata, data_version=result.data_version, check_results=result.check_results)
