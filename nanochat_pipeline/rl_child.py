"""The RL child that `rl_model` launches through Pipes (plain python or torchrun).

It calls nanochat_core's train_rl on the cell's SFT checkpoint and reports to Dagster; the core never
imports Dagster. By hand:

    python -m nanochat_pipeline.rl_child --model-tag d2_5e10 --task-data task_data \
        --rl-json '{"device_type": "cpu", "task": "arithmetic", "num_iterations": 10}'
"""
from __future__ import annotations

import argparse
import json
import sys

from nanochat_pipeline.pipes_child import curve_metadata, run_training_child

RL_LOSS_CURVE_NAME = "rl_loss_curve.png"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nanochat_pipeline.rl_child",
                                description="RL of one grid cell's SFT model (chat_rl) reported over Dagster Pipes.")
    p.add_argument("--model-tag", required=True, help="the cell's tag: SFT checkpoint in, RL checkpoint out")
    p.add_argument("--task-data", required=True, help="the task data folder (GSM8K; the arithmetic task needs none)")
    p.add_argument("--resume-from-step", type=int, default=-1)
    p.add_argument("--rl-json", default="{}", help="other chat_rl flags as JSON (python names)")
    return p


def number(value) -> float:
    return float(value) if isinstance(value, (int, float)) else float("nan")


def rl_metadata(summary: dict, model_file) -> dict:
    """Numeric metadata (plotted across materializations): rewards, pass@1 before and after, speed."""
    def pass1(entry):
        return number(entry["pass_at_k"][0]) if entry else float("nan")

    return {
        "final_loss": number(summary.get("final_loss")), "steps": int(summary["step"]),
        "first_mean_reward": number(summary.get("first_mean_reward")),
        "final_mean_reward": number(summary.get("final_mean_reward")),
        "pass@1_before": pass1(summary.get("pass_at_k_before")), "pass@1": pass1(summary.get("pass_at_k_after")),
        "rollouts_per_sec": number(summary.get("rollouts_per_sec")),
        "training_seconds": number(summary.get("training_seconds")),
        "task": summary["task"], "checkpoint": str(model_file),
    }


def main(argv: list[str] | None = None) -> int:
    from nanochat_core.common import settings
    from nanochat_core.train.rl_args import make_rl_args
    from nanochat_core.train.rl_trainer import train_rl

    cli = build_parser().parse_args(argv)
    args = make_rl_args(model_tag=cli.model_tag, task_data=cli.task_data, resume_from_step=cli.resume_from_step,
                        **json.loads(cli.rl_json))
    return run_training_child(
        cli.model_tag, lambda on_metrics: train_rl(args, on_metrics=on_metrics),
        settings.report_dir() / cli.model_tag / RL_LOSS_CURVE_NAME,
        lambda summary, meta, model_file, curve: rl_metadata(summary, model_file) | {"loss_curve": curve_metadata(curve)},
        cli.resume_from_step)


if __name__ == "__main__":
    sys.exit(main())
