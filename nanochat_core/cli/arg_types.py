"""argparse types shared by the commands."""
from __future__ import annotations

import argparse


def positive_int(value: str) -> int:
    """A positive integer written as 250000000, 250_000_000 or 2.5e8 (nanochat's docs write 2e9)."""
    try:
        number = float(value.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number != int(number) or number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return int(number)


def add_checkpoint_args(p: argparse.ArgumentParser, what: str) -> None:
    """-i/-g/-s/--device-type: which checkpoint a chat command loads (chat_cli, chat_web, chat_eval)."""
    from nanochat_core.chat.loaded_model import SOURCES

    p.add_argument("-i", "--source", choices=sorted(SOURCES), default="sft", help=what)
    p.add_argument("-g", "--model-tag", type=str, default=None,
                   help="checkpoint folder; when not given, the largest depth's tag")
    p.add_argument("-s", "--step", type=int, default=None, help="checkpoint step; when not given, the last")
    p.add_argument("--device-type", type=str, default="auto", help="cuda | cpu | mps | auto (detect)")
