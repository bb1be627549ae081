"""`python -m nanochat_core.cli.chat_sft [JSONL ...]`: fine-tune a base model into a chat model
(nanochat's scripts/chat_sft.py).

Also under torchrun: `torchrun --nproc_per_node=N -m nanochat_core.cli.chat_sft ...`.
"""
from __future__ import annotations

import sys

from nanochat_core.train.command import run_as_command
from nanochat_core.train.sft_args import parse_sft_args


def main(argv: list[str] | None = None) -> int:
    args = parse_sft_args(argv)
    from nanochat_core.train.sft_trainer import train_sft  # after parsing: --help and flag errors need no torch

    return run_as_command("chat_sft", train_sft, args)


if __name__ == "__main__":
    sys.exit(main())
