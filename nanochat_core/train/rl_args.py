"""chat_rl's command-line flags: nanochat's names and defaults (scripts/chat_rl.py), plus ours for data and resuming.

As in args.py, the parser is the single source of truth for defaults: programmatic runs (the
pipeline's child, the tests) use `make_rl_args(**overrides)` and get the CLI's validation. The flags
spelled as in base_train or chat_sft, and the checked types, are flags.py's.
"""
from __future__ import annotations

import argparse

from nanochat_core.train.flags import (CommandFlags, add_fraction_flag, add_lr_flag, add_parent_flags,
                                       add_resume_flag, add_run_flag, add_task_data_flag, flag_name, fraction)

RL_TASKS = ("gsm8k", "arithmetic")
POSITIVE_FLAGS = ("num_epochs", "device_batch_size", "examples_per_step", "num_samples", "max_new_tokens")


def build_rl_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m nanochat_core.cli.chat_rl",
        description="Reinforcement learning of an SFT chat model on a task with checkable answers "
                    "(nanochat's chat_rl: on-policy samples, reward minus the question's mean, token-level PG loss).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("logging and runtime")
    add_run_flag(g)
    g.add_argument("--device-type", type=str, default="", help="cuda | cpu | mps; empty = detect")
    g = p.add_argument_group("input model and output")
    add_parent_flags(g, "SFT checkpoint folder under chatsft_checkpoints (also the folder under chatrl_checkpoints); "
                        "when not given, the largest depth's tag", "SFT")
    add_resume_flag(g, "RL")
    g.add_argument("--save-every", type=int, default=60, help="checkpoint every N steps, and at the end (<= 0 = only at the end)")
    g = p.add_argument_group("task")
    g.add_argument("--task", choices=RL_TASKS, default="gsm8k",
                   help="gsm8k (train split for rollouts, test for pass@k) or arithmetic (generated offline, no download)")
    add_task_data_flag(g, "chat_sft and chat_eval")
    g.add_argument("--max-train-questions", type=int, default=-1,
                   help="train on the first N training questions only (-1 = all): a fixed set whose reward curve "
                        "is comparable step to step, for small runs")
    g = p.add_argument_group("rollouts and horizon")
    g.add_argument("--num-epochs", type=int, default=1, help="passes over the training questions")
    g.add_argument("--num-iterations", type=int, default=-1,
                   help="number of steps (-1 = num-epochs x training questions // examples-per-step)")
    g.add_argument("--device-batch-size", type=int, default=8,
                   help="rows per sampling batch and per training forward; also the k of pass@1..k")
    g.add_argument("--examples-per-step", type=int, default=16, help="questions per step, over all processes")
    g.add_argument("--num-samples", type=int, default=16, help="completions sampled per question")
    g.add_argument("--max-new-tokens", type=int, default=256, help="tokens generated per completion")
    g.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    g.add_argument("--top-k", type=int, default=50, help="top-k sampling (0 = the whole vocabulary)")
    g = p.add_argument_group("optimization")
    add_lr_flag(g, "embedding_lr", 0.2)
    add_lr_flag(g, "unembedding_lr", 0.004)
    add_lr_flag(g, "matrix_lr", 0.02)
    g.add_argument("--weight-decay", type=float, default=0.0, help="Muon weight decay")
    add_fraction_flag(g, "init_lr_frac", 0.05,
                      "every group's LR as a fraction of the flags' values, in [0.0, 1.0]")
    g = p.add_argument_group("evaluation")
    g.add_argument("--eval-every", type=int, default=60, help="pass@1..k on the test split every N steps and at the end (<= 0 = never)")
    g.add_argument("--eval-examples", type=int, default=400, help="test questions per pass@k evaluation")
    return p


def validate_rl_args(args: argparse.Namespace) -> argparse.Namespace:
    """Checks the parser cannot express (and re-checks types for programmatic Namespaces)."""
    fraction("--init-lr-frac")(str(args.init_lr_frac))
    for name in POSITIVE_FLAGS:
        value = getattr(args, name)
        if not isinstance(value, int) or value < 1:
            raise argparse.ArgumentTypeError(f"{flag_name(name)} must be a positive integer, got {value!r}")
    if args.task not in RL_TASKS:
        raise argparse.ArgumentTypeError(f"--task must be one of {', '.join(RL_TASKS)}, got {args.task!r}")
    if args.temperature < 0:
        raise argparse.ArgumentTypeError(f"--temperature must be >= 0, got {args.temperature}")
    if args.eval_every > 0 and args.eval_examples < 1:
        raise argparse.ArgumentTypeError(f"--eval-examples must be positive when --eval-every is on, got {args.eval_examples}")
    return args


CHAT_RL_FLAGS = CommandFlags("chat_rl", build_rl_parser, validate_rl_args)
parse_rl_args, make_rl_args = CHAT_RL_FLAGS.parse, CHAT_RL_FLAGS.make
