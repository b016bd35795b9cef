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


def compile_condition(text: str) -> Callable[[dict[str, Any]], bool]:
    """Parse and check ``text``; return a predicate over a record. Raises ConditionError."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
        _check(tree)
    except SyntaxError as exc:
        raise ConditionError(f"invalid condition syntax: {exc.msg}") from exc
    except RecursionError as exc:  # e.g. thousands of `not`: a user mistake, not a crash
        raise ConditionError("the condition is nested too deeply") from exc
    try:
        fn = _compile(tree.body)
    except RecursionError as exc:
        raise ConditionError("the condition is nested too deeply") from exc
    return lambda rec: (v := fn(rec)) is not _MISSING and bool(v)


Fn = Callable[[dict[str, Any]], Any]


def _constant(node: ast.AST) -> Any:
    """The value of a literal, true/false/null or negative number; ``_MISSING`` for anything else."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in _NAMES:
        return _NAMES[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        try:
            return -node.operand.value  # type: ignore[operator]
        except TypeError:  # -"text"
            raise ConditionError(f"'{ast.unparse(node)}' is not allowed in a condition") from None
    return _MISSING


def _compile(node: ast.AST) -> Fn:
    """``node`` as a closure, built once: no walk of the tree for every record."""
    constant = _constant(node)
    if constant is not _MISSING:
        return lambda rec: constant
    if isinstance(node, ast.Name):
        name = node.id
        return lambda rec: rec.get(name, _MISSING)
    if isinstance(node, ast.List | ast.Tuple):
        items = [_compile(e) for e in node.elts]
        return lambda rec: [None if (v := f(rec)) is _MISSING else v for f in items]
    if isinstance(node, ast.UnaryOp):  # not
        inner = _compile(node.operand)
        return lambda rec: not (None if (v := inner(rec)) is _MISSING else v)
    if isinstance(node, ast.BoolOp):
        parts = [_compile(n) for n in node.values]
        test = all if isinstance(node.op, ast.And) else any
        return lambda rec: test(None if (v := f(rec)) is _MISSING else v for f in parts)
    assert isinstance(node, ast.Compare)
    left = _compile(node.left)
    chain = [(_CMP[type(op)], isinstance(op, ast.Eq), _compile(c)) for op, c in zip(node.ops, node.comparators,
                                                                                   strict=True)]

    def compare(rec: dict[str, Any]) -> bool:
        a = left(rec)
        for op, eq, right in chain:
            b = right(rec)
            if a is _MISSING or b is _MISSING:
                # a comparison with a field the record lacks never holds (`x == null` aside)
                if not (eq and None in (a, b)):
                    return False
                a = b = None
            try:
                if not op(a, b):
                    return False
            except TypeError:
                return False  # e.g. None < 3: a missing field never matches
            a = b
        return True

    return compare
