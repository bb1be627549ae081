"""What every training child (base_train, chat_sft, chat_rl) does around the core's training function.

Only global rank 0 opens Pipes (two reporting ranks break the session); metrics stream into the
step's log, a loss curve and the progress file the main job's bar reads; a cancelled run exits
EXIT_INTERRUPTED with its checkpoint saved and nothing materialized; a finished one reports metadata
and the checkpoint's content hash. Outside Dagster, Pipes falls back to a stub context and the child
simply trains.
"""
from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path
from typing import Callable

from nanochat_pipeline.children.progress import ProgressWriter, progress_file
from nanochat_pipeline.pictures import save_curve_points

EXIT_INTERRUPTED = 130  # the run was cancelled: a checkpoint was saved, nothing is materialized


def child_parser(module: str, description: str, flags: list[tuple[str, dict]], json_flag: str,
                 tool: str) -> argparse.ArgumentParser:
    """`python -m module`'s parser: the child's own `flags` ((name, add_argument keywords) pairs), then
    --resume-from-step and `json_flag` (the core `tool`'s other flags as JSON, python names)."""
    p = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    for name, keywords in flags:
        p.add_argument(name, **keywords)
    p.add_argument("--resume-from-step", type=int, default=-1)
    p.add_argument(json_flag, default="{}", help=f"other {tool} flags as JSON (python names)")
    return p


def child_main(argv: list[str] | None, parser: argparse.ArgumentParser, asset: str, loads_check: str,
               curve_name: str, start: Callable[[argparse.Namespace], Callable], metadata_of: Callable) -> int:
    """A child's `main`: its flags, then start(cli) -> train(on_metrics) (the core's flags are built and
    checked there, before Pipes opens), then report_training for `asset`'s cell --model-tag, with
    metadata_of(cli, summary, meta, model_file) -> Dagster metadata."""
    cli = parser.parse_args(argv)
    train = start(cli)
    return report_training(asset, loads_check, cli.model_tag, cli.resume_from_step, train, curve_name,
                           lambda summary, meta, model_file: metadata_of(cli, summary, meta, model_file))


def report_training(asset: str, loads_check: str, model_tag: str, resume_from_step: int, train: Callable,
                    curve_name: str, metadata_of: Callable[[dict, dict, Path], dict]) -> int:
    """Run train(on_metrics) -> summary under Pipes for `asset`'s cell `model_tag`; return the exit status.

    metadata_of(summary, meta, model_file) -> Dagster metadata, to which the loss curve is added (its
    points saved beside <report dir>/<tag>/<curve_name>, which the asset draws); rank 0 keeps its latest
    step, loss and rate in the cell's progress file for the main job's progress bar. The asset's check `loads_check` (the saved checkpoint
    loads into a model) is done here, where torch is already imported: the run worker needs no torch."""
    from dagster_pipes import open_dagster_pipes

    from nanochat_core.common import settings
    from nanochat_core.common.file_hash import files_sha256
    from nanochat_core.model import checkpoint as ckpt

    is_rank0 = os.environ.get("RANK", "0") == "0"
    with (open_dagster_pipes() if is_rank0 else contextlib.nullcontext()) as pipes:
        log = pipes.log.info if pipes is not None else (lambda msg: None)
        steps, losses = [], []
        write_progress = ProgressWriter(progress_file(settings.base_dir(), asset, model_tag)) if is_rank0 else None

        def on_metrics(m: dict) -> None:
            if write_progress is not None:
                write_progress(m)
            if "val_bpb" in m:
                log(f"step {m['step']}: val_bpb {m['val_bpb']:.4f}")
            elif "loss" in m:
                steps.append(m["step"])
                losses.append(m["loss"])
                if m["step"] % 10 == 0:  # RL's steps report a mean reward rather than tokens per second
                    rate = f"{m['tok_per_sec']:,} tok/s, mfu {m['mfu']:.2f}%" if "tok_per_sec" in m else \
                        f"mean reward {m['mean_reward']:.4f}"
                    log(f"step {m['step']}: loss {m['loss']:.4f}, {rate}")

        if resume_from_step >= 0:
            log(f"resuming {model_tag} from its checkpoint at step {resume_from_step}")
        summary = train(on_metrics)
        if not is_rank0:
            return 0
        if summary["interrupted"]:
            log(f"interrupted at step {summary['step']}: checkpoint saved; materialize this cell again to resume")
            return EXIT_INTERRUPTED
        ckpt_dir = Path(summary["checkpoint_dir"])
        model_file = ckpt.model_path(ckpt_dir, summary["step"])
        meta = ckpt.load_meta(ckpt_dir, summary["step"])
        curve = save_curve_points(steps, losses, settings.report_dir() / model_tag / curve_name, model_tag)
        metadata = metadata_of(summary, meta, model_file) | {"loss_curve": curve_metadata(curve)}
        if pipes is not None:
            pipes.report_asset_materialization(metadata=metadata, data_version=files_sha256([model_file]))
            problem = ckpt.load_problem(ckpt_dir, summary["step"])  # read back from disk, as a user would
            pipes.report_asset_check(loads_check, passed=problem is None,
                                     metadata={"outcome": problem or f"loaded {model_file}"})
        log(f"trained {model_tag}: val_bpb {summary.get('val_bpb')}, checkpoint {model_file}")
    return 0


def curve_metadata(curve: Path) -> dict:
    """The curve's path; the asset draws it there and inlines it (see training_run.inline_loss_curve): a
    Pipes message holding the base64 image was once read half-written by the parent's reader thread."""
    return {"raw_value": str(curve), "type": "path"}


def number_or_nan(value) -> float:
    """A summary value as numeric metadata: NaN (plotted as a gap) where the trainer recorded none."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")
