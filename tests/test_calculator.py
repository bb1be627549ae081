"""The calculator: arithmetic is right, nanochat's .count( form works, everything else is refused
(None), huge powers are refused before they are computed, and the time limit holds."""
import sys
import time

import pytest

from nanochat_core.chat.calculator import MAX_NESTING, use_calculator


@pytest.mark.parametrize("expression, value", [
    ("1+2*3", 7), ("(1 + 2) * 3", 9), ("-3**2", -9), ("(-3)**2", 9), ("7 // 2", 3), ("-7 // 2", -4),
    ("7 % 3", 1), ("10 / 4", 2.5), ("2**10", 1024), ("+5 - -2", 7), ("3.5 * 2", 7.0), ("1e3 + 1", 1001.0),
    ("2 ** -1", 0.5), ("1,000 * 3", 3000), ("12,345,678 + 1", 12345679), (" 6*7 ", 42),
])
def test_arithmetic(expression, value):
    result = use_calculator(expression)
    assert result == value and type(result) is type(value)


@pytest.mark.parametrize("expression, value", [
    ('"strawberry".count("r")', 3), ("'banana'.count('an')", 2), ('"a,b,c".count(",")', 2),
    ('"1,234".count(",")', 1), ('"hello".count("z")', 0),
])
def test_count_form(expression, value):
    assert use_calculator(expression) == value


@pytest.mark.parametrize("expression", [
    "x + 1", "abs(-1)", "__import__('os').system('true')", "import os", "open('/etc/passwd').read()",
    "(1).__class__", "().__class__.__bases__[0].__subclasses__()", "'a'.upper()", "'a'.count", "len('abc')",
    "'abc'.count('a', 0)", "'abc'.count(sub='a')", "'abc'.count(x)", "lambda: 1", "[x for x in (1, 2)]",
    "(1, 2)", "[1, 2][0]", "'a' * 3", "'a' + 'b'", "'abc'", "True + 1", "None", "1 if 1 else 2", "1 < 2",
    "2 & 3", "1j * 1j", "(-8) ** 0.5", "b'x'.count(b'x')", "'" + "r" * 5000 + "'.count('r')",
    "1 +", "", "x = 1", "1; 2", "f'{1}'",
])
def test_refuses_everything_else(expression):
    assert use_calculator(expression) is None


@pytest.mark.parametrize("expression", ["9**9**9", "2**100000", "10**(10**6)", "(10**1000)**5", "10.0**400",
                                        "1/0", "5 % 0", "2 ** 4096 * 2 ** 4096"])
def test_huge_or_failing_results_are_refused_quickly(expression):
    t0 = time.perf_counter()
    assert use_calculator(expression) is None
    assert time.perf_counter() - t0 < 0.5  # refused before computing, not after


def _from_deep_in_the_stack(levels_left: int, expression: str):
    return use_calculator(expression) if levels_left == 0 else _from_deep_in_the_stack(levels_left - 1, expression)


def test_deep_nesting_and_long_text_are_refused():
    assert use_calculator("-" * 900 + "1") is None
    assert use_calculator("-" * (MAX_NESTING + 5) + "1") is None
    assert use_calculator("-" * 40 + "1") == 1  # moderate nesting still evaluates
    # the refusal is the explicit cap, not a RecursionError: the same wherever the stack stands
    depth_left = sys.getrecursionlimit() - 200
    assert _from_deep_in_the_stack(depth_left, "-" * 900 + "1") is None
    assert _from_deep_in_the_stack(depth_left, "-" * (MAX_NESTING + 5) + "1") is None
    assert _from_deep_in_the_stack(100, "-" * 40 + "1") == 1
    assert use_calculator("(" * 300 + "1" + ")" * 300) is None
    assert use_calculator("+".join(["1"] * 600)) is None  # over the expression length cap


def test_time_limit():
    # the deadline is checked at every node, so it also holds where no signal alarm can run
    expression = "+".join(["2**2000 * 3**1000 // 7"] * 40)
    assert use_calculator(expression) == 40 * (2**2000 * 3**1000 // 7)  # within the default limit: exact
    assert use_calculator(expression, timeout_s=0.0) is None
