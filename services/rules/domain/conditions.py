"""Rule conditions: expressions such as `source == "website" and score >= 80 and region in
["华东", "华南"]`, checked when a rule is saved and evaluated by simpleeval (never `eval`)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from simpleeval import EvalWithCompoundTypes, InvalidExpression

MAX_LENGTH = 2000


def _days_between(value: Any, now: datetime) -> float | None:
    if value in (None, ""):
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (now - moment).total_seconds() / 86400


FUNCTIONS: dict[str, Any] = {
    "len": len,
    "lower": lambda value: str(value).lower() if value is not None else None,
    "upper": lambda value: str(value).upper() if value is not None else None,
    "contains": lambda haystack, needle: haystack is not None and needle in haystack,
    "startswith": lambda value, prefix: value is not None and str(value).startswith(prefix),
    "days_since": lambda value: _days_between(value, datetime.now(UTC)),
    "int": int,
    "float": float,
    "str": str,
}

ALLOWED_NODES: tuple[type[ast.AST], ...] = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd,
    ast.Compare, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn,
    ast.Is, ast.IsNot, ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Mod, ast.FloorDiv,
    ast.Name, ast.Load, ast.Constant, ast.List, ast.Tuple, ast.Set, ast.Attribute,
    ast.Subscript, ast.Call, ast.IfExp,
)


@dataclass(frozen=True)
class ExpressionError:
    message: str
    line: int
    column: int  # 1-based
    offset: int  # 0-based character offset into the expression

    def __str__(self) -> str:
        return f"{self.message} at line {self.line}, column {self.column} (offset {self.offset})"


def _offset(text: str, line: int, column: int) -> int:
    lines = text.split("\n")
    return sum(len(row) + 1 for row in lines[: max(line - 1, 0)]) + max(column - 1, 0)


def check(expression: str) -> ExpressionError | None:
    """None when the expression is acceptable; otherwise the first problem and its position."""
    if not isinstance(expression, str):
        return ExpressionError("must be a string", 1, 1, 0)
    if len(expression) > MAX_LENGTH:
        return ExpressionError(f"longer than {MAX_LENGTH} characters", 1, MAX_LENGTH + 1,
                               MAX_LENGTH)
    if not expression.strip():
        return None
    lines = expression.split("\n")
    try:
        # In parentheses, so that a condition may span lines like any bracketed expression.
        tree = ast.parse("(" + expression + "\n)", mode="eval")
    except SyntaxError as exc:
        line, column = exc.lineno or 0, exc.offset or 0
        if line == 1:
            column -= 1  # the opening parenthesis
        if line < 1 or line > len(lines) or column < 1:
            # at the added closing parenthesis or unknown: the expression ended too early
            line = len(lines)
            column = len(lines[-1].rstrip()) + 1
            message = "the expression is incomplete"
        else:
            message = exc.msg
        return ExpressionError(message, line, column, _offset(expression, line, column))
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 1)
        column = getattr(node, "col_offset", 0) + (0 if line == 1 else 1)
        if not isinstance(node, ALLOWED_NODES):
            return ExpressionError(f"{type(node).__name__} is not allowed in a condition", line,
                                   column, _offset(expression, line, column))
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                return ExpressionError(
                    f"unknown function; available: {', '.join(sorted(FUNCTIONS))}",
                    line, column, _offset(expression, line, column),
                )
            if node.keywords:
                return ExpressionError("keyword arguments are not allowed", line, column,
                                       _offset(expression, line, column))
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            return ExpressionError("names starting with '_' are not allowed", line, column,
                                   _offset(expression, line, column))
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            return ExpressionError("names starting with '_' are not allowed", line, column,
                                   _offset(expression, line, column))
    return None


class ConditionFailed(Exception):
    """The expression could not be evaluated on this data (the run records why)."""


def evaluate(
    expression: str | None, names: dict[str, Any], now: datetime | None = None
) -> bool:
    """True when the expression holds (an empty one always does). `now` is the service's clock
    (a test clock may be ahead of the wall clock), used by `days_since`."""
    if not expression or not expression.strip():
        return True
    functions = dict(FUNCTIONS)
    if now is not None:
        functions["days_since"] = lambda value: _days_between(value, now)
    evaluator = EvalWithCompoundTypes(names={"true": True, "false": False, "null": None,
                                             **names},
                                      functions=functions)
    try:
        return bool(evaluator.eval("(" + expression + "\n)"))
    except InvalidExpression as exc:
        raise ConditionFailed(str(exc)) from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, ZeroDivisionError) as exc:
        raise ConditionFailed(f"{type(exc).__name__}: {exc}") from None
