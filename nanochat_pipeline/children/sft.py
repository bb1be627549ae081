"""The SFT child that `sft_model` launches through Pipes (plain python or torchrun).

It calls nanochat_core's train_sft on the cell's base checkpoint and reports to Dagster; the core
never imports Dagster. By hand:

    python -m nanochat_pipeline.children.sft --model-tag d2_5e10 --identity identity_conversations.jsonl \
        --task-data task_data --sft-json '{"device_type": "cpu", "num_iterations": 20}'
"""
from __future__ import annotations

import functools
import json
import sys

from nanochat_pipeline.children import SFT_CHILD_MODULE
from nanochat_pipeline.children.pipes import child_main, child_parser, number_or_nan

SFT_LOSS_CURVE_NAME = "sft_loss_curve.png"


def build_parser():
    return child_parser(
        SFT_CHILD_MODULE, "Fine-tune one grid cell's base model (chat_sft) and report it over Dagster Pipes.",
        [("--model-tag", {"required": True, "help": "the cell's tag: base checkpoint in, SFT checkpoint out"}),
         ("--identity", {"required": True, "help": "the identity conversations JSONL"}),
         ("--task-data", {"required": True, "help": "the task data folder"})],
        "--sft-json", "chat_sft")


def sft_metadata(summary: dict, model_file) -> dict:
    """Numeric metadata (plotted across materializations) and the mixture as a table."""
    def number(key):
        return number_or_nan(summary.get(key))

    rows = [f"| {name} | {count:,} |" for name, count in (summary.get("mixture") or {}).items()]
    rows += [f"| {name} | left out: {why} |" for name, why in (summary.get("mixture_left_out") or {}).items()]
    table = "| source | conversations (epochs included) |\n|---|---|\n" + "\n".join(rows)
    return {
        "val_bpb": number("val_bpb"), "final_loss": number("final_loss"), "tokens_per_sec": number("tokens_per_sec"),
        "training_seconds": number("training_seconds"), "steps": int(summary["step"]),
        "conversations_too_long": int(summary.get("conversations_too_long") or 0),
        "mixture": {"raw_value": table, "type": "md"}, "checkpoint": str(model_file),
    }


def start_sft(cli) -> functools.partial:
    """chat_sft on the cell's base checkpoint, into the cell's SFT folder (the same tag)."""
    from nanochat_core.train.sft_trainer import make_sft_args, train_sft

    return functools.partial(train_sft, make_sft_args(
        model_tag=cli.model_tag, output_tag=cli.model_tag, identity=cli.identity, task_data=cli.task_data,
        resume_from_step=cli.resume_from_step, **json.loads(cli.sft_json)))


def main(argv: list[str] | None = None) -> int:
    return child_main(argv, build_parser(), "sft_model", "sft_checkpoint_loads", SFT_LOSS_CURVE_NAME, start_sft,
                      lambda cli, summary, meta, model_file: sft_metadata(summary, model_file))


if __name__ == "__main__":
    sys.exit(main())
