"""The restricted calculator behind the model's python tool (nanochat's nanochat/engine.py use_calculator).

The model writes an expression between <|python_start|> and <|python_end|>; this evaluates it
and the engine feeds the result back. Model output is untrusted text, so nothing here calls
eval: the expression is parsed with `ast` and a small whitelist of nodes is interpreted by hand.

Allowed: int and float literals, + - * / // % **, parentheses, unary + and -, and nanochat's one
string form, `"<literal>".count("<literal>")` (how a model counts letters in a word).
Everything else (names, other attributes or calls, imports, lambdas, comprehensions, subscripts,
bools, long strings or expressions) is refused: use_calculator returns None and the engine
forces nothing. Sizes are capped so no expression can eat memory or time (9**9**9 is refused
before it is computed), and a deadline is checked at every node, so the limit also holds in
worker threads where signal-based alarms cannot run.
"""
from __future__ import annotations

import ast
import math
import operator
import re
import time

MAX_EXPRESSION_CHARS = 1000
MAX_STRING_CHARS = 1000  # a literal longer than this is not a word to count letters in
MAX_INT_BITS = 4096  # ~1233 decimal digits: well under Python's 4300-digit str() limit
MAX_EXPONENT = 10_000
# Deepest expression tree evaluated. An explicit cap, checked without recursion before the
# recursive evaluation, so the refusal does not depend on how deep the caller's stack already is.
MAX_NESTING = 100
DEFAULT_TIMEOUT_S = 3.0

_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
# "1,000,000" is a number the way people write it.
_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


class Refused(Exception):
    """The expression is outside what the calculator evaluates."""


def use_calculator(expression: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> int | float | None:
    """The value of `expression`, or None when it is refused, fails (division by zero, overflow)
    or runs past `timeout_s` seconds."""
    if not isinstance(expression, str) or len(expression) > MAX_EXPRESSION_CHARS:
        return None
    evaluator = _Evaluator(time.monotonic() + timeout_s)
    text = expression.strip()
    value = _evaluate(text, evaluator)
    if value is None and _THOUSANDS_COMMA.search(text):
        # "1,000 * 3" parses as a tuple; read it again without the separators.
        value = _evaluate(_THOUSANDS_COMMA.sub("", text), evaluator)
    return value


def _evaluate(text: str, evaluator: "_Evaluator") -> int | float | None:
    try:
        tree = ast.parse(text, mode="eval").body
        if _nesting_depth(tree) > MAX_NESTING:
            return None
        value = evaluator.visit(tree)
    except (Refused, SyntaxError, ValueError, ArithmeticError, RecursionError, MemoryError):
        return None
    return value if _is_number(value) else None


def _nesting_depth(tree: ast.AST) -> int:
    deepest, pending = 0, [(tree, 1)]
    while pending:
        node, depth = pending.pop()
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Evaluator:
    def __init__(self, deadline: float):
        self.deadline = deadline

    def visit(self, node: ast.AST):
        if time.monotonic() > self.deadline:
            raise Refused("time limit")
        if isinstance(node, ast.Constant):
            return self._constant(node.value)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _check_size(_UNARY[type(node.op)](self._number(node.operand)))
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = self._number(node.left), self._number(node.right)
            if isinstance(node.op, ast.Pow):
                _check_power(left, right)
            return _check_size(_BINARY[type(node.op)](left, right))
        if isinstance(node, ast.Call):
            return self._count(node)
        raise Refused(type(node).__name__)

    def _number(self, node: ast.AST):
        value = self.visit(node)
        if not _is_number(value):
            raise Refused("arithmetic on a non-number")
        return value

    @staticmethod
    def _constant(value):
        if _is_number(value):
            return value
        if isinstance(value, str) and len(value) <= MAX_STRING_CHARS:
            return value
        raise Refused(f"literal {type(value).__name__}")

    def _count(self, node: ast.Call) -> int:
        func = node.func
        if not (isinstance(func, ast.Attribute) and func.attr == "count" and isinstance(func.value, ast.Constant)):
            raise Refused("call")
        if node.keywords or len(node.args) != 1 or not isinstance(node.args[0], ast.Constant):
            raise Refused("count() takes one string literal")
        haystack, needle = self._constant(func.value.value), self._constant(node.args[0].value)
        if not (isinstance(haystack, str) and isinstance(needle, str)):
            raise Refused("count() on a non-string")
        return haystack.count(needle)


def _check_power(base, exponent) -> None:
    """Refuse powers whose result would be huge, before computing them."""
    if abs(exponent) > MAX_EXPONENT:
        raise Refused("exponent too large")
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        if exponent * math.log2(abs(base)) > MAX_INT_BITS:
            raise Refused("power too large")


def _check_size(value):
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise Refused("integer too large")
    return value
