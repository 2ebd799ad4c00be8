"""Scoring generated text: extract an answer, then compare it with the record's target.

Extractors turn a generation into the answer it states (``yes_no``: the first yes or no word;
``last_number``; ``first_line``; ``letter``: the first standalone capital letter A-H;
``regex``: the first group, or the whole match, of a pattern). Scorers compare that answer
with a field of the record: ``exact_match`` (after trimming; case-insensitive) and
``countdown`` (the answer, up to any ``=``, is an expression that reaches the record's
``target`` from its ``numbers``). A score is 1.0 or 0.0; an answer that cannot be extracted
scores 0.

The CountDown checker parses the expression with :mod:`ast` and evaluates only numbers, the four
operators, unary minus and parentheses, with exact fractions: no ``eval``, nothing else runs.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any

EXTRACTORS = ("yes_no", "last_number", "first_line", "letter", "regex")
SCORERS = ("exact_match", "countdown")
_WORD = re.compile(r"\b(yes|no)\b", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_LETTER = re.compile(r"\b([A-H])\b")
_OPS: dict[type, Callable[[Fraction, Fraction], Fraction]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}
_MAX_EXPRESSION = 200


def extract(text: str, how: str, pattern: str | None = None) -> str | None:
    """The answer ``text`` states, by the extractor ``how``; None if it states none."""
    if how == "yes_no":
        m = _WORD.search(text)
        return m[1].capitalize() if m else None
    if how == "last_number":
        found = _NUMBER.findall(text)
        return found[-1] if found else None
    if how == "first_line":
        line = text.strip().split("\n", 1)[0].strip()
        return line or None
    if how == "letter":
        m = _LETTER.search(text)
        return m[1] if m else None
    if how == "regex":
        m = re.search(pattern or "", text)
        if not m:
            return None
        return m[1] if m.groups() else m[0]
    raise ValueError(f"unknown extractor {how!r}; one of {', '.join(EXTRACTORS)}")


def score(answer: str | None, how: str, record: Mapping[str, Any], target: str | None) -> float:
    """1.0 if ``answer`` is right for ``record``, else 0.0 (see the module docstring)."""
    if answer is None:
        return 0.0
    if how == "exact_match":
        want = str(record[target]) if target is not None else ""
        return float(answer.strip().lower() == want.strip().lower())
    if how == "countdown":  # "3 * 4 - 2 = 10" proposes "3 * 4 - 2"
        expression = answer.split("=", 1)[0]
        return float(check_countdown(expression, record["numbers"], record["target"]))
    raise ValueError(f"unknown scorer {how!r}; one of {', '.join(SCORERS)}")


def check_countdown(expression: str, numbers: list[int], target: int | float) -> bool:
    """Whether ``expression`` uses only ``numbers`` (each at most as often as given) with
    ``+ - * /`` and parentheses, and equals ``target`` exactly. Anything else -- names, calls,
    powers, a division by zero, a number not offered -- is False, never an exception."""
    if len(expression) > _MAX_EXPRESSION:
        return False
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        return False
    used: list[Fraction] = []
    try:
        value = _evaluate(tree.body, used)
    except (ValueError, ZeroDivisionError):
        return False
    offered = Counter(Fraction(x) for x in numbers)
    return not (Counter(used) - offered) and value == Fraction(target)


def _evaluate(node: ast.AST, used: list[Fraction]) -> Fraction:
    """The exact value of an arithmetic expression tree; ValueError on any other node."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        used.append(Fraction(node.value))
        return Fraction(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left = _evaluate(node.left, used)
        return _OPS[type(node.op)](left, _evaluate(node.right, used))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand, used)
    raise ValueError(f"not allowed in a CountDown expression: {type(node).__name__}")
