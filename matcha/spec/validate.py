"""Turn pydantic validation errors into located, actionable issues."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ValidationError

from matcha.errors import ConfigIssue
from matcha.spec.yamlload import Located, Path_, format_path

_HINTS = {
    "missing": "Add this field",
    "extra_forbidden": "Remove this field or check its spelling",
    "string_type": "Write a string (quote it if needed)",
    "int_parsing": "Write a whole number",
    "int_type": "Write a whole number",
    "float_parsing": "Write a number",
    "bool_parsing": "Write true or false",
    "list_type": "Write a list, e.g. [a, b]",
    "dict_type": "Write a mapping (key: value)",
    "model_type": "Write a mapping (key: value)",
    "string_pattern_mismatch": "Use letters, digits, '_' and '-' only, starting with a letter",
    "too_short": "Add at least one entry",
    "greater_than_equal": "Use a larger value",
    "less_than_equal": "Use a smaller value",
}


def _message(err: dict[str, Any]) -> tuple[str, str]:
    kind = err["type"]
    if kind == "missing":
        return "this required field is missing", _HINTS[kind]
    if kind == "extra_forbidden":
        return "unknown field", _HINTS[kind]
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return (f"received invalid value {_shown(err.get('input'))}", f"Valid values are: {expected}")
    msg = err["msg"]
    if kind == "value_error":  # our own validators' text; pydantic's "Value error, " prefix is noise
        msg = msg.removeprefix("Value error, ")
    if "input" in err and kind not in ("missing",) and not isinstance(err["input"], dict | list):
        msg = f"{msg} (got {_shown(err['input'])})"
    return msg, _HINTS.get(kind, "")


def _shown(value: Any) -> str:
    """A short representation of a wrong value (a 5,000-digit number has no repr at all)."""
    try:
        text = repr(value)
    except ValueError:
        return f"a number with more than {4300:,} digits"
    return text if len(text) <= 80 else text[:77] + "..."


def issues_from_validation(
    exc: ValidationError, located: Located, prefix: Path_ = (), alias: dict[str, str] | None = None
) -> list[ConfigIssue]:
    """Map each pydantic error location (under ``prefix``) to a file position."""
    out = []
    alias = alias or {}
    for err in exc.errors(include_url=False):
        loc: tuple[str | int, ...] = tuple(alias.get(p, p) if isinstance(p, str) else p for p in err["loc"])
        # pydantic puts tagged-union / function-validator names in loc; drop non-data parts
        loc = tuple(p for p in loc if not (isinstance(p, str) and p.startswith("function-")))
        message, hint = _message(dict(err))
        out.append(located.issue((*prefix, *loc), message, hint))
    return out


def validate_model(
    model: type[BaseModel], data: Any, located: Located, prefix: Path_ = ()
) -> tuple[Any, list[ConfigIssue]]:
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        issues = issues_from_validation(exc, located, prefix, alias={"with_": "with"})
    # our own validators say what is wrong; the field's description says what is expected
    described = {format_path((*prefix, n)): f.description for n, f in model.model_fields.items() if f.description}
    return None, [replace(i, hint=f"Expected: {described[i.path]}") if not i.hint and i.path in described else i
                  for i in issues]
