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
