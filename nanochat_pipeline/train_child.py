"""The training child that `base_model` launches through Pipes (plain python or torchrun).

It calls nanochat_core's train_base with a metrics callback and reports to Dagster; the core never
imports Dagster. Only global rank 0 opens Pipes (two reporting ranks break the session). Run it
by hand too: outside Dagster, Pipes falls back to a stub context and it simply trains.

    python -m nanochat_pipeline.train_child --depth 2 --target-flops 5e10 --model-tag d2_5e10 \
        --train-json '{"device_type": "cpu", "max_seq_len": 64}'
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from nanochat_pipeline.pictures import loss_curve_png, markdown_image

EXIT_INTERRUPTED = 130  # the run was cancelled: a checkpoint was saved, nothing is materialized
LOSS_CURVE_NAME = "loss_curve.png"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nanochat_pipeline.train_child",
                                description="Train one grid cell (base_train) and report it over Dagster Pipes.")
    p.add_argument("--depth", type=int, required=True)
    p.add_argument("--target-flops", type=float, required=True)
    p.add_argument("--model-tag", required=True)
    p.add_argument("--resume-from-step", type=int, default=-1)
    p.add_argument("--train-json", default="{}", help="other base_train flags as JSON (python names)")
    return p


def cell_metadata(summary: dict, meta: dict, target_flops: float, depth: int, checkpoint: Path, curve: Path) -> dict:
    """Numeric metadata (plotted across materializations) plus what scaling_results needs."""
    from nanochat_core.scaling import row_from_training

    row = row_from_training(target_flops, depth, meta["model_config"]["n_embd"], summary)
    metadata = {k: v for k, v in row.items() if v is not None}
    metadata.update({
        "val_bpb": summary["val_bpb"] if summary["val_bpb"] is not None else float("nan"),
        "final_loss": summary["final_loss"] if summary["final_loss"] is not None else float("nan"),
        "tokens_per_sec": float(summary["tokens_per_sec"]), "mfu": float(summary["mfu"]),
        "training_seconds": float(summary["training_seconds"]), "total_flops": float(summary["total_flops"]),
        "scaling_params": int(summary["scaling_params"]),
        "checkpoint": str(checkpoint), "loss_curve": {"raw_value": markdown_image(curve, "loss curve"), "type": "md"},
    })
    return metadata


def main(argv: list[str] | None = None) -> int:
    from dagster_pipes import open_dagster_pipes

    from nanochat_core import settings
    from nanochat_core.train import checkpoint as ckpt
    from nanochat_core.train.args import make_args
    from nanochat_core.train.base_trainer import train_base
    from nanochat_core.file_hash import files_sha256

    cli = build_parser().parse_args(argv)
    is_rank0 = os.environ.get("RANK", "0") == "0"
    pipes_session = open_dagster_pipes() if is_rank0 else contextlib.nullcontext()
    with pipes_session as pipes:
        log = pipes.log.info if pipes is not None else (lambda msg: None)
        args = make_args(depth=cli.depth, target_flops=cli.target_flops, model_tag=cli.model_tag,
                         resume_from_step=cli.resume_from_step, **json.loads(cli.train_json))
        steps, losses = [], []

        def on_metrics(m: dict) -> None:
            if "val_bpb" in m:
                log(f"step {m['step']}: val_bpb {m['val_bpb']:.4f}")
            elif "loss" in m:
                steps.append(m["step"])
                losses.append(m["loss"])
                if m["step"] % 10 == 0:
                    log(f"step {m['step']}: loss {m['loss']:.4f}, {m['tok_per_sec']:,} tok/s, mfu {m['mfu']:.2f}%")

        if cli.resume_from_step >= 0:
            log(f"resuming {cli.model_tag} from its checkpoint at step {cli.resume_from_step}")
        summary = train_base(args, on_metrics=on_metrics)
        if not is_rank0:
            return 0
        if summary["interrupted"]:
            log(f"interrupted at step {summary['step']}: checkpoint saved; materialize this cell again to resume")
            return EXIT_INTERRUPTED
        ckpt_dir = Path(summary["checkpoint_dir"])
        model_file = ckpt.model_path(ckpt_dir, summary["step"])
        meta = ckpt.load_meta(ckpt_dir, summary["step"])
        curve = loss_curve_png(steps, losses, settings.report_dir() / cli.model_tag / LOSS_CURVE_NAME, cli.model_tag)
        metadata = cell_metadata(summary, meta, cli.target_flops, cli.depth, model_file, curve)
        if pipes is not None:
            pipes.report_asset_materialization(metadata=metadata, data_version=files_sha256([model_file]))
        log(f"trained {cli.model_tag}: val_bpb {summary['val_bpb']}, checkpoint {model_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
