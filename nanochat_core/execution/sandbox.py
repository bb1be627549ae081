"""Run untrusted Python (model-written HumanEval solutions) in a fenced-in child process.

The child is `python -I -B sandbox_guard.py ...` in a fresh temporary directory (deleted afterwards),
in its own session so the whole process group can be killed, with stdin at EOF (after the guard
has read the run's end marker from it), a scrubbed environment and output to files. sandbox_guard.py sets the kernel limits, drops root to an
unprivileged user and installs the audit hook before the program runs; this module picks the limits,
enforces the wall-clock timeout and reads the outcome. Linux only (rlimits, /proc, pidfd).
"""
from __future__ import annotations

import math
import os
import pwd
import secrets
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from nanochat_core.execution import sandbox_guard

GUARD_SCRIPT = Path(sandbox_guard.__file__).resolve()
OUTPUT_LIMIT_BYTES = 32 * 1024  # kept of each of stdout and stderr: the first and the last half
UNPRIVILEGED_FALLBACK_ID = 65534  # nobody/nogroup on Debian-like systems


@dataclass
class SandboxResult:
    """status: "passed" (ran to its end: exit status 0 and the run's end marker after its output),
    "failed" (exception, nonzero exit, killed by a signal, or ended early without the marker),
    "timeout", "memory" (MemoryError under the memory limit) or "blocked" (the guard refused a call;
    stderr says which)."""
    status: str
    stdout: str
    stderr: str
    exit_code: int  # negative: killed by that signal, as subprocess reports it
    elapsed_s: float

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def run_untrusted(code: str, timeout_s: float = 3.0, memory_mb: int = 512) -> SandboxResult:
    """Run `code` as a program in the sandbox and say how it ended."""
    if timeout_s <= 0 or memory_mb <= 0:
        raise ValueError(f"timeout_s and memory_mb must be positive, got {timeout_s} and {memory_mb}")
    ids = unprivileged_ids() if os.geteuid() == 0 else None
    workdir = tempfile.mkdtemp(prefix="nanochat-sandbox-", dir=workdir_parent(ids is not None))
    try:
        program = Path(workdir, sandbox_guard.PROGRAM_NAME)
        program.write_text(code, encoding="utf-8")
        if ids is not None:
            os.chown(workdir, *ids)
        uid, gid = ids if ids is not None else (-1, -1)
        cmd = [sys.executable, "-I", "-B", str(GUARD_SCRIPT), workdir,
               str(memory_mb * 1024 * 1024), str(math.ceil(timeout_s) + 1), str(uid), str(gid)]
        end_marker = f"sandbox-end-{secrets.token_hex(16)}"  # new for every run, never in the program
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            start = time.monotonic()
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=out, stderr=err, cwd=workdir,
                                    env=scrubbed_env(workdir), start_new_session=True, close_fds=True)
            hand_over(proc, end_marker)
            timed_out = not wait_for_exit(proc.pid, timeout_s)
            # The leader is not reaped yet, so its process group id cannot have been reused.
            kill_group(proc.pid)
            returncode = proc.wait()
            elapsed = time.monotonic() - start
            stdout, stderr = read_bounded(out), read_bounded(err)
    finally:
        remove_tree(workdir)
    stdout, ran_to_end = strip_end_marker(stdout, end_marker)
    status = classify(returncode, timed_out, ran_to_end)
    if status == "timeout" and timed_out:
        stderr += f"\nsandbox: killed after the {timeout_s:g} s time limit\n"
    if returncode == 0 and not ran_to_end:
        stderr += "\nsandbox: exit status 0 but the program did not run to its end (os._exit before the end?)\n"
    return SandboxResult(status, stdout, stderr, returncode, elapsed)


def hand_over(proc: subprocess.Popen, end_marker: str) -> None:
    """Give the guard the end marker on stdin and close it (the program then reads EOF)."""
    try:
        proc.stdin.write(end_marker.encode() + b"\n")  # far below a pipe's buffer: never blocks
        proc.stdin.close()
    except BrokenPipeError:
        pass  # the child is already gone; it will be classified as failed


def strip_end_marker(stdout: str, end_marker: str) -> tuple[str, bool]:
    """(the program's own output, whether the guard's end marker closed it)."""
    tail = "\n" + end_marker + "\n"
    if stdout.endswith(tail):
        return stdout[:-len(tail)], True
    return stdout, False


def classify(returncode: int, timed_out: bool, ran_to_end: bool) -> str:
    if timed_out or returncode == -signal.SIGXCPU:
        return "timeout"
    if returncode == 0:
        return "passed" if ran_to_end else "failed"
    if returncode == sandbox_guard.BLOCKED_EXIT_CODE:
        return "blocked"
    if returncode == sandbox_guard.MEMORY_EXIT_CODE:
        return "memory"
    return "failed"


def unprivileged_ids() -> tuple[int, int]:
    """uid/gid of `nobody`: a root child switches to them so file permissions stop it too."""
    try:
        entry = pwd.getpwnam("nobody")
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return UNPRIVILEGED_FALLBACK_ID, UNPRIVILEGED_FALLBACK_ID


def workdir_parent(unprivileged: bool) -> str:
    """Where the work dir goes: the usual temp dir, unless an unprivileged child could not reach it
    (e.g. TMPDIR under /root); then /tmp."""
    base = tempfile.gettempdir()
    if not unprivileged:
        return base
    path = Path(base).resolve()
    for folder in (path, *path.parents):
        if not folder.stat().st_mode & stat.S_IXOTH:
            return "/tmp"
    return base


def scrubbed_env(workdir: str) -> dict[str, str]:
    """Nothing of the parent's environment (API keys, tokens, HOME): the child gets only these."""
    return {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir,
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


def wait_for_exit(pid: int, timeout_s: float) -> bool:
    """Wait until the child exits, without reaping it; False when timeout_s passed first."""
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()  # not select.select: a busy parent may hold fds past 1024
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(timeout_s * 1000))
    finally:
        os.close(pidfd)


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def read_bounded(f) -> str:
    """The child's output, at most OUTPUT_LIMIT_BYTES of it: its start and its end (where a traceback
    or a refusal is), with the size of what was left out between them."""
    size = os.fstat(f.fileno()).st_size
    f.seek(0)
    if size <= OUTPUT_LIMIT_BYTES:
        data = f.read()
    else:
        half = OUTPUT_LIMIT_BYTES // 2
        head = f.read(half)
        f.seek(size - half)
        data = head + f"\n[sandbox: {size - 2 * half} bytes left out]\n".encode() + f.read(half)
    return data.decode("utf-8", errors="replace")


def remove_tree(path: str) -> None:
    """Delete the work dir, also where the program took permissions away from its own folders."""
    try:
        shutil.rmtree(path)
    except OSError:
        os.chmod(path, stat.S_IRWXU)
        for folder, subfolders, _files in os.walk(path):
            for name in subfolders:
                sub = os.path.join(folder, name)
                if not os.path.islink(sub):
                    os.chmod(sub, stat.S_IRWXU)
        shutil.rmtree(path)
