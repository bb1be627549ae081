"""`python -m nanochat_core.cli.base_train`: pretrain a base model (nanochat's scripts/base_train.py).

Also under torchrun: `torchrun --nproc_per_node=N -m nanochat_core.cli.base_train ...`.
"""
from __future__ import annotations

import sys

from nanochat_core.train.args import parse_args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from nanochat_core.train.base_trainer import train_base

    try:
        train_base(args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        # Configuration and missing-file errors: one clear line, no traceback.
        print(f"base_train: error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0  # also after SIGINT/SIGTERM: the run saved a checkpoint and stopped cleanly


if __name__ == "__main__":
    sys.exit(main())
