"""The training child that `base_model` launches through Pipes (plain python or torchrun).

It calls nanochat_core's train_base with a metrics callback and reports to Dagster; the core never
imports Dagster. Only global rank 0 opens Pipes (two reporting ranks break the session). Run it
by hand too: outside Dagster, Pipes falls back to a stub context and it simply trains.

    python -m nanochat_pipeline.children.train --depth 2 --target-flops 5e10 --model-tag d2_5e10 \
        --train-json '{"device_type": "cpu", "max_seq_len": 64}'
"""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

from nanochat_pipeline.children import TRAIN_CHILD_MODULE
from nanochat_pipeline.children.pipes import child_main, child_parser

LOSS_CURVE_NAME = "loss_curve.png"


def build_parser():
    return child_parser(
        TRAIN_CHILD_MODULE, "Train one grid cell (base_train) and report it over Dagster Pipes.",
        [("--depth", {"type": int, "required": True}), ("--target-flops", {"type": float, "required": True}),
         ("--model-tag", {"required": True})],
        "--train-json", "base_train")


def cell_metadata(cli, summary: dict, meta: dict, checkpoint: Path) -> dict:
    """Numeric metadata (plotted across materializations) plus what scaling_results needs."""
    from nanochat_core.scaling.results_csv import row_from_training, shape_from_meta

    row = row_from_training(cli.target_flops, cli.depth, meta["model_config"]["n_embd"], summary,
                            shape_from_meta(meta))
    metadata = {k: v for k, v in row.items() if v is not None}
    metadata.update({
        "val_bpb": summary["val_bpb"] if summary["val_bpb"] is not None else float("nan"),
        "final_loss": summary["final_loss"] if summary["final_loss"] is not None else float("nan"),
        "tokens_per_sec": float(summary["tokens_per_sec"]), "mfu": float(summary["mfu"]),
        "training_seconds": float(summary["training_seconds"]), "total_flops": float(summary["total_flops"]),
        "scaling_params": int(summary["scaling_params"]),
        "checkpoint": str(checkpoint),
    })
    return metadata


def start_base(cli) -> functools.partial:
    """base_train for the cell: its depth and FLOP budget, the preset's other flags."""
    from nanochat_core.train.args import make_args
    from nanochat_core.train.base_trainer import train_base

    args = make_args(depth=cli.depth, target_flops=cli.target_flops, model_tag=cli.model_tag,
                     resume_from_step=cli.resume_from_step, **json.loads(cli.train_json))
    return functools.partial(train_base, args)


def main(argv: list[str] | None = None) -> int:
    return child_main(argv, build_parser(), "base_model", "checkpoint_loads", LOSS_CURVE_NAME, start_base, cell_metadata)


if __name__ == "__main__":
    sys.exit(main())
