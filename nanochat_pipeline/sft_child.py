"""The SFT child that `sft_model` launches through Pipes (plain python or torchrun).

It calls nanochat_core's train_sft on the cell's base checkpoint and reports to Dagster; the core
never imports Dagster. By hand:

    python -m nanochat_pipeline.sft_child --model-tag d2_5e10 --identity identity_conversations.jsonl \
        --task-data task_data --sft-json '{"device_type": "cpu", "num_iterations": 20}'
"""
from __future__ import annotations

import argparse
import json
import sys

from nanochat_pipeline.pipes_child import curve_metadata, run_training_child
from nanochat_pipeline.progress import progress_file

SFT_LOSS_CURVE_NAME = "sft_loss_curve.png"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nanochat_pipeline.sft_child",
                                description="Fine-tune one grid cell's base model (chat_sft) and report it over Dagster Pipes.")
    p.add_argument("--model-tag", required=True, help="the cell's tag: base checkpoint in, SFT checkpoint out")
    p.add_argument("--identity", required=True, help="the identity conversations JSONL")
    p.add_argument("--task-data", required=True, help="the task data folder")
    p.add_argument("--resume-from-step", type=int, default=-1)
    p.add_argument("--sft-json", default="{}", help="other chat_sft flags as JSON (python names)")
    return p


def sft_metadata(summary: dict, model_file) -> dict:
    """Numeric metadata (plotted across materializations) and the mixture as a table."""
    def number(key):
        value = summary.get(key)
        return float(value) if isinstance(value, (int, float)) else float("nan")

    rows = [f"| {name} | {count:,} |" for name, count in (summary.get("mixture") or {}).items()]
    rows += [f"| {name} | left out: {why} |" for name, why in (summary.get("mixture_left_out") or {}).items()]
    table = "| source | conversations (epochs included) |\n|---|---|\n" + "\n".join(rows)
    return {
        "val_bpb": number("val_bpb"), "final_loss": number("final_loss"), "tokens_per_sec": number("tokens_per_sec"),
        "training_seconds": number("training_seconds"), "steps": int(summary["step"]),
        "conversations_too_long": int(summary.get("conversations_too_long") or 0),
        "mixture": {"raw_value": table, "type": "md"}, "checkpoint": str(model_file),
    }


def main(argv: list[str] | None = None) -> int:
    from nanochat_core.common import settings
    from nanochat_core.train.sft_args import make_sft_args
    from nanochat_core.train.sft_trainer import train_sft

    cli = build_parser().parse_args(argv)
    args = make_sft_args(model_tag=cli.model_tag, output_tag=cli.model_tag, identity=cli.identity,
                         task_data=cli.task_data, resume_from_step=cli.resume_from_step, **json.loads(cli.sft_json))
    return run_training_child(
        cli.model_tag, lambda on_metrics: train_sft(args, on_metrics=on_metrics),
        settings.report_dir() / cli.model_tag / SFT_LOSS_CURVE_NAME,
        lambda summary, meta, model_file, curve: sft_metadata(summary, model_file) | {"loss_curve": curve_metadata(curve)},
        cli.resume_from_step, progress_file(settings.base_dir(), "sft_model", cli.model_tag))


if __name__ == "__main__":
    sys.exit(main())
