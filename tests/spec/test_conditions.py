"""``when:`` / ``filter`` conditions: what is allowed, what is refused, and that nothing ever runs code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from matcha.spec.conditions import ConditionError, compile_condition

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("text", "record", "expected"), [
    ("label == 'negative'", {"label": "negative"}, True),
    ("label == 'negative'", {"label": "positive"}, False),
    ('label == "negative"', {"label": "negative"}, True),
    ("label != 'spam'", {"label": "ham"}, True),
    ("label != 'spam'", {"label": "spam"}, False),
    ("score >= 0.5", {"score": 0.5}, True),
    ("score >= 0.5", {"score": 0.49}, False),
    ("score > 0.5", {"score": 1}, True),
    ("score < 0.5", {"score": 0.1}, True),
    ("score <= 0", {"score": 0}, True),
    ("-1 < t", {"t": 0}, True),
    ("t == -2.5", {"t": -2.5}, True),
    ("1 < n < 3", {"n": 2}, True),
    ("1 < n < 3", {"n": 3}, False),
    ("lang in ['fr', 'en']", {"lang": "fr"}, True),
    ("lang in ['fr', 'en']", {"lang": "de"}, False),
    ("lang in ('fr', 'en')", {"lang": "en"}, True),
    ("lang not in ['fr']", {"lang": "en"}, True),
    ("'late' in text", {"text": "arrived late again"}, True),
    ("'late' in text", {"text": "on time"}, False),
    ("tags == ['a', 'b']", {"tags": ["a", "b"]}, True),
    ("complaint == true", {"complaint": True}, True),
    ("complaint == True", {"complaint": True}, True),
    ("complaint == false", {"complaint": True}, False),
    ("note == null", {"note": None}, True),
    ("complaint", {"complaint": True}, True),
    ("not complaint", {"complaint": False}, True),
    ("score >= 0.5 and lang in ['fr', 'en']", {"score": 0.9, "lang": "fr"}, True),
    ("score >= 0.5 and lang in ['fr', 'en']", {"score": 0.9, "lang": "de"}, False),
    ("label == 'a' or label == 'b'", {"label": "b"}, True),
    ("(a or b) and not c", {"a": False, "b": True, "c": False}, True),
    ("(a or b) and not c", {"a": True, "b": True, "c": True}, False),
    ("  score > 1\n", {"score": 2}, True),
    # names always mean record fields, never Python builtins
    ("len == 3", {"len": 3}, True),
    ("print == 'x'", {"print": "x"}, True),
])
def test_allowed_condition(text: str, record: dict[str, Any], expected: bool) -> None:
    assert compile_condition(text)(record) is expected


@pytest.mark.parametrize("text", [
    "score > 0.5",
    "score < 0.5",
    "score >= 0",
    "label == 'negative'",
    "label in ['a', 'b']",
    "'a' in tags",
    "1 < n < 3",
    "label == 'x' or score > 0.5",
    "len == 3",
])
def test_missing_field_never_matches(text: str) -> None:
    assert compile_condition(text)({}) is False
    assert compile_condition(text)({"other": 1}) is False


@pytest.mark.parametrize(("text", "record"), [
    ("score > 0.5", {"score": "high"}),
    ("score < 0.5", {"score": None}),
    ("'a' in tags", {"tags": 3}),
    ("n >= 1", {"n": [1]}),
])
def test_values_of_the_wrong_type_never_match(text: str, record: dict[str, Any]) -> None:
    assert compile_condition(text)(record) is False


@pytest.mark.parametrize("text", ["label != 'spam'", "lang not in ['fr']"])
def test_missing_field_never_matches_negated_comparison(text: str) -> None:
    assert compile_condition(text)({}) is False


@pytest.mark.parametrize(("text", "message"), [
    ("__import__('os').system('true')", r"is not allowed in a condition"),
    ("open('/etc/passwd')", r"'open\('/etc/passwd'\)' is not allowed"),
    ("exec('x = 1')", r"not allowed"),
    ("getattr(x, 'y') == 1", r"not allowed"),
    ("x.__class__", r"'x.__class__' is not allowed"),
    ("__builtins__.open", r"not allowed"),
    ("x[0] == 1", r"'x\[0\]' is not allowed"),
    ("x + 1 > 2", r"'x \+ 1' is not allowed"),
    ("-x > 1", r"'-x' is not allowed"),
    ("~1 == x", r"not allowed"),
    ("lambda: 1", r"not allowed"),
    ("[c for c in x]", r"not allowed"),
    ("f'{x}' == 'a'", r"not allowed"),
    ("(y := 1)", r"not allowed"),
    ("a if b else c", r"not allowed"),
    ("x in {1, 2}", r"not allowed"),
    ("x == {'a': 1}", r"not allowed"),
    ("x in [*y]", r"not allowed"),
    ("x is None", r"unsupported comparison operator"),
    ("x is not None", r"unsupported comparison operator"),
    ("import os", r"invalid condition syntax"),
    ("x == 1; y", r"invalid condition syntax"),
    ("x ==", r"invalid condition syntax"),
    ("", r"invalid condition syntax"),
    ("x\x00", r"invalid condition syntax"),
    pytest.param("x == " + "[" * 300 + "]" * 300, r"invalid condition syntax", id="300-nested-lists"),
    pytest.param("not " * 5000 + "x", r"nested too deeply", id="5000-nots"),
])
def test_refused_condition(text: str, message: str) -> None:
    with pytest.raises(ConditionError, match=message):
        compile_condition(text)


def test_condition_error_is_a_value_error() -> None:
    # pydantic turns ValueError from a validator into a located issue (the `filter` step relies on it)
    assert issubclass(ConditionError, ValueError)


@pytest.mark.parametrize("template", [
    "__import__('pathlib').Path({path!r}).touch()",
    "open({path!r}, 'w')",
    "x == __import__('pathlib').Path({path!r}).touch()",
    "[__import__('pathlib').Path({path!r}).touch() for _ in [1]]",
])
def test_refused_condition_runs_nothing(tmp_path: Path, template: str) -> None:
    sentinel = tmp_path / "pwned"
    with pytest.raises(ConditionError):
        compile_condition(template.format(path=str(sentinel)))
    assert not sentinel.exists()


def test_record_values_are_data_not_code(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    record = {"x": f"__import__('pathlib').Path({str(sentinel)!r}).touch()"}
    assert compile_condition("x == 'a'")(record) is False
    assert compile_condition("'pathlib' in x")(record) is True
    assert not sentinel.exists()
    assert record == {"x": f"__import__('pathlib').Path({str(sentinel)!r}).touch()"}
