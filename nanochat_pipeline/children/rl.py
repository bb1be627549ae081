"""The RL child that `rl_model` launches through Pipes (plain python or torchrun).

It calls nanochat_core's train_rl on the cell's SFT checkpoint and reports to Dagster; the core never
imports Dagster. By hand:

    python -m nanochat_pipeline.children.rl --model-tag d2_5e10 --task-data task_data \
        --rl-json '{"device_type": "cpu", "task": "arithmetic", "num_iterations": 10}'
"""
from __future__ import annotations

import functools
import json
import sys

from nanochat_pipeline.children import RL_CHILD_MODULE
from nanochat_pipeline.children.pipes import child_main, child_parser, number_or_nan as number

RL_LOSS_CURVE_NAME = "rl_loss_curve.png"


def build_parser():
    return child_parser(
        RL_CHILD_MODULE, "RL of one grid cell's SFT model (chat_rl) reported over Dagster Pipes.",
        [("--model-tag", {"required": True, "help": "the cell's tag: SFT checkpoint in, RL checkpoint out"}),
         ("--task-data", {"required": True,
                          "help": "the task data folder (GSM8K; the arithmetic task needs none)"})],
        "--rl-json", "chat_rl")


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


def start_rl(cli) -> functools.partial:
    """chat_rl on the cell's SFT checkpoint, into the cell's RL folder."""
    from nanochat_core.train.rl_trainer import make_rl_args, train_rl

    return functools.partial(train_rl, make_rl_args(model_tag=cli.model_tag, task_data=cli.task_data,
                                                    resume_from_step=cli.resume_from_step, **json.loads(cli.rl_json)))


def main(argv: list[str] | None = None) -> int:
    return child_main(argv, build_parser(), "rl_model", "rl_checkpoint_loads", RL_LOSS_CURVE_NAME, start_rl,
                      lambda cli, summary, meta, model_file: rl_metadata(summary, model_file))


if __name__ == "__main__":
    sys.exit(main())
