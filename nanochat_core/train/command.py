"""A trainer's entry point run as a command (base_train, chat_sft): its exit status and error line."""
from __future__ import annotations

import sys
from typing import Callable


def run_as_command(tool: str, train: Callable, args) -> int:
    """`train(args)`; 0 when it returns, 1 with one `tool: error: ...` line on stderr for a user's mistake."""
    try:
        train(args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        # Configuration, data and missing-file errors: one clear line, no traceback.
        print(f"{tool}: error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0  # also after SIGINT/SIGTERM: the run saved a checkpoint and stopped cleanly
