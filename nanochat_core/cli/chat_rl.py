"""`python -m nanochat_core.cli.chat_rl`: reinforcement learning of an SFT chat model (nanochat's scripts/chat_rl.py).

Reads chatsft_checkpoints/<tag>/, writes chatrl_checkpoints/<tag>/ (same layout). Offline, `--task
arithmetic` needs no download. Also under torchrun: `torchrun --nproc_per_node=N -m nanochat_core.cli.chat_rl ...`.
"""
from __future__ import annotations

import sys

from nanochat_core.train.command import run_as_command
from nanochat_core.train.rl_args import parse_rl_args


def main(argv: list[str] | None = None) -> int:
    args = parse_rl_args(argv)
    from nanochat_core.train.rl_trainer import train_rl  # after parsing: --help and flag errors need no torch

    return run_as_command("chat_rl", train_rl, args)


if __name__ == "__main__":
    sys.exit(main())
