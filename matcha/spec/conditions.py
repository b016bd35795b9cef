"""``when:`` conditions: a tiny, safe expression language over record fields.

Allowed: field names, literals (strings, numbers, true/false/null, lists), comparisons
(``== != < <= > >= in not in``), ``and`` / ``or`` / ``not`` and parentheses. Nothing else — no
calls, attributes or subscripts — so a pipeline file can never execute code.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import Any

_CMP: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}
_NAMES = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


_MISSING = object()


class ConditionError(ValueError):
    pass


def _check(node: ast.AST) -> None:
    if isinstance(node, ast.Expression):
        _check(node.body)
    elif isinstance(node, ast.BoolOp):
        for v in node.values:
            _check(v)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        _check(node.operand)
    elif isinstance(node, ast.Compare):
        if not all(type(op) in _CMP for op in node.ops):
            raise ConditionError("unsupported comparison operator")
        for v in [node.left, *node.comparators]:
            _check(v)
    elif isinstance(node, ast.List | ast.Tuple):
        for v in node.elts:
            _check(v)
    elif isinstance(node, ast.Constant | ast.Name):
        return
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        return  # negative numbers
    else:
        raise ConditionError(f"'{ast.unparse(node)}' is not allowed in a condition")


def _ev(node: ast.AST, rec: dict[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return _NAMES[node.id] if node.id in _NAMES else rec.get(node.id, _MISSING)
    if isinstance(node, ast.List | ast.Tuple):
        return [None if (v := _ev(e, rec)) is _MISSING else v for e in node.elts]
    if isinstance(node, ast.UnaryOp):
        val = _ev(node.operand, rec)
        if val is _MISSING:
            val = None
        return (not val) if isinstance(node.op, ast.Not) else -val
    if isinstance(node, ast.BoolOp):
        vals = (None if (v := _ev(n, rec)) is _MISSING else v for n in node.values)
        return all(vals) if isinstance(node.op, ast.And) else any(vals)
    assert isinstance(node, ast.Compare)
    return _compare(node, rec)


def _compare(node: ast.Compare, rec: dict[str, Any]) -> bool:
    left = _ev(node.left, rec)
    for op, comp in zip(node.ops, node.comparators, strict=True):
        right = _ev(comp, rec)
        if left is _MISSING or right is _MISSING:
            # a comparison with a field the record lacks never holds (`x == null` aside)
            if not (isinstance(op, ast.Eq) and None in (left, right)):
                return False
            left = right = None
        try:
            if not _CMP[type(op)](left, right):
                return False
        except TypeError:
            return False  # e.g. None < 3: a missing field never matches
        left = right
    return True


def compile_condition(text: str) -> Callable[[dict[str, Any]], bool]:
    """Parse and check ``text``; return a predicate over a record. Raises ConditionError."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
        _check(tree)
    except SyntaxError as exc:
        raise ConditionError(f"invalid condition syntax: {exc.msg}") from exc
    except RecursionError as exc:  # e.g. thousands of `not`: a user mistake, not a crash
        raise ConditionError("the condition is nested too deeply") from exc

    body = tree.body
    return lambda rec: (v := _ev(body, rec)) is not _MISSING and bool(v)
