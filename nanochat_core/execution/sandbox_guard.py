"""The sandbox's child side: `python -I -B sandbox_guard.py WORKDIR MEMORY_BYTES CPU_SECONDS UID GID`.

Runs WORKDIR/program.py after fencing the interpreter in, in this order:
1. kernel limits (address space, data, CPU seconds, file size, no core files, no new processes or
   threads), hard limits included, so the program cannot raise them again;
2. when started as root, a switch to an unprivileged uid/gid (UID/GID, -1 = stay), so the kernel's own
   permission checks stop deletions and writes outside WORKDIR even if the guard below were bypassed;
3. an audit hook (sys.addaudithook; Python code cannot remove one) that refuses process creation,
   signals, the network, ctypes, writes/deletes outside WORKDIR and raising limits. A refused call ends
   the process at once with BLOCKED_EXIT_CODE: ending it, rather than raising, means the program
   cannot catch the refusal and carry on as if nothing happened.

A program that ran to its end is followed on stdout by the run's end marker: a random token the
parent hands over on stdin (read, then stdin is put back at EOF) and never writes into the program,
its arguments, its environment or its folder. A program that ends itself early with exit status 0
(os._exit(0) inside the solution, before check() ran) cannot print a token it never saw, so the
parent reads it as failed.

This file is run as a script under `python -I` (no project imports), so it uses the stdlib only; the
parent imports it just for the exit codes and the program's file name.
"""
from __future__ import annotations

import os
import sys

PROGRAM_NAME = "program.py"
BLOCKED_EXIT_CODE = 101
MEMORY_EXIT_CODE = 102
# sys.exit(0) before the end would skip a HumanEval check() and look like a pass, so it is a failure.
EARLY_EXIT_CODE = 103
REFUSAL_MARKER = "sandbox: refused"

FILE_SIZE_LIMIT = 16 * 1024 * 1024  # also bounds stdout/stderr, which go to files

ALWAYS_REFUSED = frozenset({
    "os.system", "os.exec", "os.posix_spawn", "os.fork", "os.forkpty", "subprocess.Popen",
    "os.kill", "os.killpg", "signal.pthread_kill",
    "socket.__new__", "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg",
    "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo",
    "resource.setrlimit", "resource.prlimit", "webbrowser.open",
    # No symlink can then exist inside the work dir, so a path's text says where it leads (see below).
    "os.symlink",
    # Ways to reach the hook's own state or to build bytecode that reads and writes memory freely.
    "sys.settrace", "sys.setprofile", "gc.get_objects", "gc.get_referrers", "gc.get_referents",
    "code.__new__",
})
# Modules whose only use here would be to get around the hook: _posixsubprocess forks without an
# audit event (so `import subprocess` is refused too), the test C-API modules poke at internals.
REFUSED_MODULES = frozenset({
    "_posixsubprocess", "_ctypes", "_testcapi", "_testinternalcapi", "_xxsubinterpreters",
})
# event -> ((path argument, its dir_fd argument or None), ...): every path must lie inside the work dir.
PATH_ARGUMENTS = {
    "os.remove": ((0, 1),),
    "os.rmdir": ((0, 1),),
    "os.mkdir": ((0, 2),),
    "os.rename": ((0, 2), (1, 3)),
    "os.link": ((0, 2), (1, 3)),
    "os.truncate": ((0, None),),
    "os.chmod": ((0, 2),),
    "os.chown": ((0, 3),),
    "os.utime": ((0, 3),),
    "os.setxattr": ((0, None),),
    "os.removexattr": ((0, None),),
    "shutil.rmtree": ((0, 1),),
    "shutil.move": ((0, None), (1, None)),
}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def set_limits(memory_bytes: int, cpu_seconds: int) -> None:
    import resource

    for limit, soft, hard in (
        (resource.RLIMIT_AS, memory_bytes, memory_bytes),
        (resource.RLIMIT_DATA, memory_bytes, memory_bytes),
        # SIGXCPU at the soft limit (the parent reads it as a timeout), SIGKILL a second later.
        (resource.RLIMIT_CPU, cpu_seconds, cpu_seconds + 1),
        (resource.RLIMIT_FSIZE, FILE_SIZE_LIMIT, FILE_SIZE_LIMIT),
        (resource.RLIMIT_CORE, 0, 0),
        # 0 new tasks: fork, and threads, fail in the kernel whatever the program finds to call.
        # (Root is exempt, which is why a root parent also drops to an unprivileged uid.)
        (resource.RLIMIT_NPROC, 0, 0),
    ):
        resource.setrlimit(limit, (soft, hard))


def drop_privileges(uid: int, gid: int) -> bool:
    """Become uid/gid for good (real, effective and saved ids, no supplementary groups); False where
    this root may not (a container without CAP_SETUID, an unmapped uid), leaving the hook alone on guard.

    The interpreter may live where that user cannot look (pyenv under /root, mode 0700), so the
    import directories are opened first and, where the new user cannot list them, reached afterwards
    through /proc/self/fd/N: a process may always follow its own open descriptors."""
    held = {}
    for entry in sys.path:
        if entry and os.path.isdir(entry):
            held[entry] = os.open(entry, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError:
        for fd in held.values():
            os.close(fd)
        return False
    moved = {}
    for entry, fd in held.items():
        try:
            os.listdir(entry)
            os.close(fd)
        except PermissionError:
            moved[entry] = f"/proc/self/fd/{fd}"
    if not moved:
        return True

    def reroute(path: str) -> str:
        for old, new in moved.items():
            if path == old or path.startswith(old + os.sep):
                return new + path[len(old):]
        return path

    sys.path[:] = [reroute(p) for p in sys.path]
    for module in list(sys.modules.values()):  # packages imported at startup (encodings, collections, ...)
        search = getattr(module, "__path__", None)
        if isinstance(search, list):
            search[:] = [reroute(p) if isinstance(p, str) else p for p in search]
    sys.path_importer_cache.clear()
    return True


def make_audit_hook(workdir: str):
    """The hook, built so the program cannot change what it does: every name it uses at call time is
    bound here (module globals, os.path and builtins can all be patched by the program), paths are
    judged by their text (no os.path), and it never raises (a traceback would hand out its frame)."""
    refused_events, refused_modules = ALWAYS_REFUSED, REFUSED_MODULES
    path_arguments = {event: spec for event, spec in PATH_ARGUMENTS.items()}
    write_flags, exit_code = WRITE_FLAGS, BLOCKED_EXIT_CODE
    marker = REFUSAL_MARKER.encode()
    devnull = (os.devnull, os.devnull.encode())
    getcwd, readlink, write, exit_now = os.getcwd, os.readlink, os.write, os._exit
    streams = (sys.stdout, sys.stderr)
    type_, repr_, len_, base_exception = type, repr, len, BaseException
    cwd_fds = (None, -1, -100)  # "no dir_fd" as the events spell it (-100 is AT_FDCWD)
    prefix = workdir + "/"

    def absolute(path, dir_fd=None):
        """The absolute path an event argument names, or None when its text cannot tell: a ".." may
        follow a symlink outside the work dir anywhere, so no path with one is judged."""
        if type_(path) is int:
            return readlink(f"/proc/self/fd/{path}")
        if type_(path) is bytes:
            path = bytes.decode(path, "utf-8", "surrogateescape")
        elif type_(path) is not str:
            return None
        if not str.startswith(path, "/"):
            base = getcwd() if dir_fd in cwd_fds else readlink(f"/proc/self/fd/{dir_fd}")
            path = base + "/" + path
        parts = [part for part in str.split(path, "/") if part not in ("", ".")]
        if ".." in parts:
            return None
        return "/" + "/".join(parts)

    def inside(path, dir_fd=None) -> bool:
        real = absolute(path, dir_fd)
        return real is not None and (real == workdir or str.startswith(real, prefix))

    def refuse(event, args) -> None:
        try:
            for stream in streams:
                stream.flush()
            detail = repr_(args[:1] if event == "import" else args)  # not the whole sys.path
            detail = detail if len_(detail) <= 200 else detail[:200] + "...)"
            write(2, b"\n" + marker + b" " + str.encode(event + detail, "utf-8", "replace") + b"\n")
        finally:
            exit_now(exit_code)

    def judge(event, args) -> bool:
        if event in refused_events or str.startswith(event, "ctypes."):
            return False
        if event == "import":
            return type_(args[0]) is str and args[0] not in refused_modules
        if event == "open":
            path, mode, flags = args
            if type_(path) is int or not flags & write_flags or path in devnull:
                return True
            # os.open (mode None) does not report its dir_fd, so only an absolute path can be judged.
            if mode is None and not (type_(path) in (str, bytes) and path[:1] in ("/", b"/")):
                return False
            return inside(path)
        for path_index, fd_index in path_arguments.get(event, ()):
            if not inside(args[path_index], args[fd_index] if fd_index is not None else None):
                return False
        return True

    def hook(event, args) -> None:
        try:
            allowed = judge(event, args)
        except base_exception:
            allowed = False
        if not allowed:
            refuse(event, args)

    return hook


def run_program(path: str) -> int:
    """Run the program as __main__; its exit code for the parent to classify."""
    import traceback

    with open(path, encoding="utf-8") as f:
        source = f.read()
    def print_traceback(error: BaseException) -> None:
        # from the program's own frames on: the guard's frame would only be noise
        traceback.print_exception(type(error), error, error.__traceback__.tb_next)

    try:
        code = compile(source, PROGRAM_NAME, "exec")
        exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
    except MemoryError as error:
        print_traceback(error)
        return MEMORY_EXIT_CODE
    except SystemExit as stop:
        if stop.code is None or stop.code == 0:
            print("sandbox: the program called sys.exit() before its end", file=sys.stderr)
            return EARLY_EXIT_CODE
        if isinstance(stop.code, int):
            return stop.code
        print(stop.code, file=sys.stderr)
        return 1
    except BaseException as error:
        print_traceback(error)
        return 1
    return 0


def take_end_marker() -> bytes:
    """The end marker from stdin (one line), then stdin at EOF again for the program."""
    marker = b""
    while not marker.endswith(b"\n"):
        chunk = os.read(0, 64)
        if not chunk:
            break
        marker += chunk
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return marker.strip()


def main(argv: list[str]) -> None:
    workdir, memory_bytes, cpu_seconds, uid, gid = argv
    workdir = os.path.realpath(workdir)
    end_marker = take_end_marker()
    set_limits(int(memory_bytes), int(cpu_seconds))
    if int(uid) >= 0 and not drop_privileges(int(uid), int(gid)):
        print(f"sandbox: could not switch to uid {uid}; only the audit hook guards this run", file=sys.stderr)
    os.chdir(workdir)
    sys.addaudithook(make_audit_hook(workdir))
    status = run_program(os.path.join(workdir, PROGRAM_NAME))
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    if status == 0 and end_marker:
        try:
            os.write(1, b"\n" + end_marker + b"\n")
        except OSError:
            pass  # the program closed stdout: no marker, so no pass
    # os._exit: no interpreter teardown, so nothing the program registered (atexit, __del__) runs after
    # its result is decided.
    os._exit(status)


if __name__ == "__main__":
    main(sys.argv[1:])
