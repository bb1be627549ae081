"""`python -m nanochat_core.cli.base_train`: pretrain a base model (nanochat's scripts/base_train.py).

Also under torchrun: `torchrun --nproc_per_node=N -m nanochat_core.cli.base_train ...`.
"""
from __future__ import annotations

import sys

from nanochat_core.train.args import parse_args
from nanochat_core.train.command import run_as_command


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from nanochat_core.train.base_trainer import train_base  # after parsing: --help and flag errors need no torch

    return run_as_command("base_train", train_base, args)


if __name__ == "__main__":
    sys.exit(main())
