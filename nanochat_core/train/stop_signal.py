"""SIGINT/SIGTERM stop training at the next step boundary instead of killing it mid-step.

The handler only sets a flag; the loop checks it once per step, saves a checkpoint at the current
step and returns normally, so an interrupted run can be resumed with --resume-from-step.
"""
from __future__ import annotations

import contextlib
import signal
import threading


class StopFlag:
    def __init__(self):
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame):
        self.signum = signum


@contextlib.contextmanager
def stop_on_signals(signals=(signal.SIGINT, signal.SIGTERM)):
    """Yield a StopFlag set by the given signals; previous handlers come back on exit.

    Outside the main thread (Python only delivers signals there) the flag simply never fires.
    """
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = {s: signal.signal(s, flag._handle) for s in signals}
    try:
        yield flag
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
