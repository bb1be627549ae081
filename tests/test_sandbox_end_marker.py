"""A sandbox pass means the program ran to its end: the guard prints the run's secret end marker after
the program (after HumanEval's check(...)), and a program that ends itself early with status 0 never
sees that marker, so it cannot fake it."""
import pytest

from nanochat_core.execution import sandbox
from nanochat_core.execution.humaneval_program import humaneval_program
from nanochat_core.execution.sandbox import run_untrusted

PROMPT = "import os\n\ndef add(a: int, b: int) -> int:\n    \"\"\"Sum of a and b.\"\"\"\n"
TEST = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"


def test_os_exit_inside_the_solution_before_check_fails():
    program = humaneval_program(PROMPT, "def add(a, b):\n    os._exit(0)\n", TEST, "add")
    result = run_untrusted(program)
    assert result.exit_code == 0 and result.status == "failed" and not result.passed
    assert "did not run to its end" in result.stderr


def test_right_solution_passes_and_its_output_is_its_own():
    program = humaneval_program(PROMPT, "    print('adding')\n    return a + b\n", TEST, "add")
    result = run_untrusted(program)
    assert result.passed and result.stdout == "adding\nadding\n"  # no marker left in the output


@pytest.mark.parametrize("ending", [
    "import os\nos._exit(0)\nassert False, 'never reached'\n",
    "import os, sys\nsys.stdout.flush()\nos.close(1)\n",  # runs to its end, but the marker has nowhere to go
    "print('\\nsandbox-end-' + '0' * 32)\nimport os\nos._exit(0)\n",  # a guessed marker
])
def test_status_zero_without_the_marker_fails(ending):
    result = run_untrusted(ending)
    assert result.exit_code == 0 and result.status == "failed"


def test_the_marker_is_nowhere_the_program_can_read(monkeypatch):
    monkeypatch.setattr(sandbox.secrets, "token_hex", lambda n: "feedface" * (n // 4))
    snoop = ("import os, sys\n"
             "print(sys.argv, dict(os.environ), sys.stdin.read())\n"
             "print(open('/proc/self/cmdline', 'rb').read())\n"
             "for name in os.listdir('.'):\n"
             "    print(name, open(name, 'rb').read())\n")
    result = run_untrusted(snoop)
    assert result.passed and "program.py" in result.stdout
    assert "feedface" not in result.stdout  # the marker itself was taken off the end of the output
