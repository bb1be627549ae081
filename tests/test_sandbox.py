"""The code sandbox against the escapes a model-written program could try, as root (CI) and not.

Every test runs a real child interpreter; the outside folder the escapes aim at is world-writable,
so where the child is stopped it is the sandbox that stops it, not file permissions alone.
"""
import json
import os
import shutil
import socket
import tempfile
import uuid
from pathlib import Path

import pytest

from nanochat_core.execution.humaneval_program import extract_code, humaneval_program
from nanochat_core.execution.sandbox import OUTPUT_LIMIT_BYTES, run_untrusted


@pytest.fixture
def open_folder():
    """A folder outside the sandbox that any user may change: mode 0o777 and under /tmp (pytest's
    tmp_path sits in a 0700 folder an unprivileged child could not even reach), holding a file 0o666."""
    folder = Path(tempfile.mkdtemp(prefix="sandbox-target-", dir="/tmp"))
    folder.chmod(0o777)
    keep = folder / "keep.txt"
    keep.write_text("precious")
    keep.chmod(0o666)
    yield folder
    shutil.rmtree(folder)


def test_correct_program_passes_with_the_stdlib_humaneval_uses():
    result = run_untrusted(
        "import math, re, itertools, collections, typing, hashlib, functools, heapq, string\n"
        "from typing import List\n"
        "def f(xs: List[int]) -> int:\n"
        "    return sum(itertools.accumulate(xs))\n"
        "assert f([1, 2, 3]) == 10\n"
        "print(hashlib.md5(b'abc').hexdigest(), math.gcd(12, 18), re.sub('a', 'b', 'aa'))\n"
    )
    assert result.status == "passed" and result.passed
    assert result.exit_code == 0
    assert result.stdout == "900150983cd24fb0d6963f7d28e17f72 6 bb\n"


def test_failing_assert_fails_with_its_traceback():
    result = run_untrusted("def add(a, b):\n    return a - b\nassert add(2, 2) == 4\n")
    assert result.status == "failed" and not result.passed
    assert result.exit_code == 1
    assert "AssertionError" in result.stderr and 'program.py", line 3' in result.stderr


def test_early_sys_exit_is_not_a_pass():
    """sys.exit(0) before check() runs must not count as passing the tests."""
    result = run_untrusted("import sys\nsys.exit(0)\nassert False\n")
    assert result.status == "failed"


def test_infinite_loop_times_out_and_leaves_no_process():
    # 2 s: time for the interpreter to start and print its pid even on a busy machine
    result = run_untrusted("import os\nprint(os.getpid(), flush=True)\nwhile True:\n    pass\n", timeout_s=2.0)
    assert result.status == "timeout"
    assert 2.0 <= result.elapsed_s < 10.0  # stopped at the limit (plus the machine's latency), not left running
    pid = int(result.stdout.split()[0])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)


def test_huge_allocation_is_a_memory_result_and_a_modest_one_works():
    result = run_untrusted("x = bytearray(4 * 1024 ** 3)\n", memory_mb=256)
    assert result.status == "memory"
    assert "MemoryError" in result.stderr
    # the limit is in MiB, not something smaller: 100 MiB fits under 256
    assert run_untrusted("x = bytearray(100 * 1024 ** 2)\nprint(len(x))\n", memory_mb=256).passed


def test_os_system_is_refused():
    target = Path(f"/tmp/sandbox-touched-{uuid.uuid4().hex}")
    result = run_untrusted(f"import os\nos.system('touch {target}')\n")
    assert result.status == "blocked"
    assert "sandbox: refused os.system" in result.stderr
    assert not target.exists()


@pytest.mark.parametrize("attempt", [
    "import os\nos.remove({keep!r})",
    "import shutil\nshutil.rmtree({folder!r})",
    "import os\nos.rename({keep!r}, 'stolen.txt')",
    "open({keep!r}, 'w').write('overwritten')",
    "import os\nfd = os.open({folder!r}, os.O_RDONLY)\nos.unlink('keep.txt', dir_fd=fd)",
    "import os\nos.chdir({folder!r})\nopen('keep.txt', 'w')",
    "import os\nos.symlink({keep!r}, 'link')\nopen('link', 'w')",
], ids=["remove", "rmtree", "rename", "overwrite", "unlink-dir_fd", "chdir-then-write", "symlink"])
def test_changes_outside_the_work_dir_are_refused(open_folder, attempt):
    keep = open_folder / "keep.txt"
    result = run_untrusted(attempt.format(keep=str(keep), folder=str(open_folder)))
    assert result.status == "blocked"
    assert keep.read_text() == "precious"


def test_the_guard_cannot_be_switched_off_from_the_program(open_folder):
    """The hook must not read state the program can patch: module globals, builtins, os.path."""
    keep = open_folder / "keep.txt"
    result = run_untrusted(
        "import __main__, builtins, os, os.path\n"
        "__main__.PATH_ARGUMENTS.clear()\n"
        "__main__.ALWAYS_REFUSED = frozenset()\n"
        "builtins.type = lambda x: int\n"
        "os.path.realpath = lambda p: os.getcwd()\n"
        f"os.remove({str(keep)!r})\n"
    )
    assert result.status == "blocked"
    assert keep.exists()


def test_fork_and_fork_bomb_are_refused():
    assert run_untrusted("import os\nos.fork()\n").status == "blocked"
    bomb = run_untrusted("import os\nwhile True:\n    os.fork()\n", timeout_s=30.0)
    assert bomb.status == "blocked" and bomb.elapsed_s < 15.0  # refused at the first fork, long before the limit
    assert run_untrusted("import subprocess\nsubprocess.run(['true'])\n").status == "blocked"


def test_kernel_allows_no_new_task_even_where_the_hook_is_not_asked():
    """Threads raise no audit event; RLIMIT_NPROC=0 is what stops them (and any fork that gets past
    the hook)."""
    result = run_untrusted("import threading\nthreading.Thread(target=print).start()\n")
    assert result.status == "failed"
    assert "can't start new thread" in result.stderr


def test_reading_stdin_gets_eof_at_once():
    result = run_untrusted("import sys\nprint(repr(sys.stdin.read()))\n", timeout_s=30.0)
    assert result.passed and result.stdout == "''\n" and result.elapsed_s < 15.0  # EOF at once, no wait to the limit
    result = run_untrusted("input()\n")
    assert result.status == "failed" and "EOFError" in result.stderr


def test_network_is_refused_and_the_listener_sees_nothing():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        for attempt in (f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\n",
                        f"import socket\ns = socket.socket()\ns.connect(('127.0.0.1', {port}))\n"):
            assert run_untrusted(attempt).status == "blocked"
        listener.settimeout(0.2)
        with pytest.raises(socket.timeout):
            listener.accept()


def test_ctypes_is_refused():
    assert run_untrusted("import ctypes\n").status == "blocked"


def test_environment_is_scrubbed(monkeypatch):
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-secret-123")
    monkeypatch.setenv("HF_TOKEN", "hf_secret_456")
    result = run_untrusted("import json, os\nprint(json.dumps(dict(os.environ)))\n")
    assert result.passed
    env = json.loads(result.stdout)
    assert set(env) == {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL"}
    assert env["PATH"] == "/usr/bin:/bin"
    assert "secret" not in result.stdout


def test_program_may_write_in_its_own_work_dir_which_is_removed_afterwards():
    result = run_untrusted(
        "import os, tempfile\n"
        "open('out.txt', 'w').write('hello')\n"
        "assert open('out.txt').read() == 'hello'\n"
        "os.mkdir('sub')\n"
        "os.rename('out.txt', 'sub/out.txt')\n"
        "fd, name = tempfile.mkstemp()\n"
        "os.close(fd)\n"
        "os.remove(name)\n"
        "print(os.getcwd())\n"
    )
    assert result.passed, result.stderr
    workdir = Path(result.stdout.strip())
    assert workdir.name.startswith("nanochat-sandbox-")
    assert not workdir.exists()


def test_child_runs_unprivileged_when_the_parent_is_root():
    result = run_untrusted("import os\nprint(os.getuid(), os.geteuid(), os.getgroups())\n")
    assert result.passed
    uid, euid, groups = result.stdout.split(" ", 2)
    if os.geteuid() == 0:
        assert int(uid) != 0 and int(euid) != 0 and groups.strip() == "[]"
    else:
        assert int(uid) == os.getuid()


def test_output_is_bounded():
    result = run_untrusted("print('a' * 1_000_000 + 'END')\n")
    assert result.passed
    assert len(result.stdout) < OUTPUT_LIMIT_BYTES + 100
    assert "bytes left out" in result.stdout and result.stdout.endswith("END\n")


PROMPT = '''from typing import List


def running_max(numbers: List[int]) -> List[int]:
    """The largest number seen so far at each position.
    >>> running_max([1, 3, 2, 5])
    [1, 3, 3, 5]
    """
'''
TEST = '''def check(candidate):
    assert candidate([1, 3, 2, 5]) == [1, 3, 3, 5]
    assert candidate([]) == []
    assert candidate([-1, -5]) == [-1, -1]
'''
CONTINUATION = '''    out, best = [], None
    for n in numbers:
        best = n if best is None else max(best, n)
        out.append(best)
    return out
'''
CHAT_ANSWER = f'''Here is the function:

```python
def running_max(numbers: List[int]) -> List[int]:
{CONTINUATION}```
It keeps the maximum so far.'''


def test_humaneval_program_passes_for_a_right_solution_and_fails_for_a_wrong_one():
    assert run_untrusted(humaneval_program(PROMPT, CONTINUATION, TEST, "running_max")).passed
    # a chat answer: the whole function inside a fence, after prose; List comes from the prompt's imports
    assert run_untrusted(humaneval_program(PROMPT, CHAT_ANSWER, TEST, "running_max")).passed
    wrong = "    return sorted(numbers)\n"
    assert run_untrusted(humaneval_program(PROMPT, wrong, TEST, "running_max")).status == "failed"
    cheat = "    pass\nimport sys\nsys.exit(0)\n"
    assert not run_untrusted(humaneval_program(PROMPT, cheat, TEST, "running_max")).passed


def test_chat_answer_may_call_a_helper_the_prompt_defines():
    prompt = 'def double(x):\n    return 2 * x\n\n\ndef quadruple(x):\n    """Four times x."""\n'
    answer = "```python\ndef quadruple(x):\n    return double(double(x))\n```"
    test = "def check(candidate):\n    assert candidate(3) == 12\n"
    program = humaneval_program(prompt, answer, test, "quadruple")
    assert run_untrusted(program).passed


def test_extract_code_takes_the_first_fenced_block():
    assert extract_code("text\n```python\nx = 1\n```\nmore\n```python\ny = 2\n```") == "x = 1\n"
    assert extract_code("```\nz = 3\n```") == "z = 3\n"
    assert extract_code("```py\nunclosed = 1\n") == "unclosed = 1\n"
    assert extract_code("    return 1\n") == "    return 1\n"
