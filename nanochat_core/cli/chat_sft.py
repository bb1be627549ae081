"""`python -m nanochat_core.cli.chat_sft [JSONL ...]`: fine-tune a base model into a chat model
(nanochat's scripts/chat_sft.py).

Also under torchrun: `torchrun --nproc_per_node=N -m nanochat_core.cli.chat_sft ...`.
"""
from __future__ import annotations

import sys

from nanochat_core.train.sft_args import parse_sft_args


def main(argv: list[str] | None = None) -> int:
    args = parse_sft_args(argv)
    from nanochat_core.train.sft_trainer import train_sft

    try:
        train_sft(args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        # Configuration, data and missing-file errors: one clear line, no traceback.
        print(f"chat_sft: error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0  # also after SIGINT/SIGTERM: the run saved a checkpoint and stopped cleanly


if __name__ == "__main__":
    sys.exit(main())
