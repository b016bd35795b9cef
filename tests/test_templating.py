"""Templates render as before, cannot change the record, and every bomb stops fast with the reason."""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from matcha import Pipeline, PipelineError
from matcha.templating import Limits, TemplateError, compile_template, render

pytestmark = pytest.mark.unit

# (template, what the error must say). Each would hang, or take gigabytes, without the limits.
BOMBS = [
    ("{{ lipsum(10**6) }}", r"lipsum\(1000000, max=100\) is too long"),
    ("{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
     r"took longer than 1 s to render.*loop over fewer items"),
    ("{{ 'x' * 10**9 }}", r"`\*` would make a value of about 1,000,000,000 characters; a template may build at most"),
    ("{{ 'x'|center(10**9) }}", r"filter 'center' would make a value of about 1,000,000,000 characters"),
    ("{{ 10**(10**8) }}", r"`\*\*` would make a number of about [\d,]+ digits"),
    ("{{ 7 * (10**9999) * (10**9999) * (10**9999) * (10**9999) }}", r"`\*` would make a number"),
    ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", r"recursion went too deep.*give it an end case"),
    # values that double on every turn of a loop, built with each way of joining text
    ("{% set ns = namespace(x='ab') %}{% for i in range(64) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}",
     r"`~` would make a value of about 1,048,576"),
    ("{% set ns = namespace(x='ab') %}{% for i in range(64) %}{% set ns.x = ns.x + ns.x %}{% endfor %}",
     r"`\+` would make a value"),
    ("{% macro d(x) %}{{ x }}{{ x }}{% endmacro %}{% set ns = namespace(x='ab') %}"
     "{% for i in range(64) %}{% set ns.x = d(ns.x) %}{% endfor %}", r"a block or macro would make a value"),
    ("{% set ns = namespace(x=['a']) %}{% for i in range(64) %}{% set ns.x = ns.x + ns.x %}{% endfor %}",
     r"`\+` would make a value"),
    # one step that multiplies the size of its input
    ("{{ range(100000)|map('string')|map('center', 999999)|join }}", r"filter 'join' would make a value"),
    ("{{ ('x' * 999999).join(['a'] * 100000) }}", r"join\(\) would make a value"),
    ("{{ ('x' * 999999)|replace('', 'yy') }}", r"filter 'replace' would make a value"),
    ("{{ ('\t' * 999999).expandtabs(1000) }}", r"expandtabs\(\) would make a value"),
    ("{{ '{:>999999999}'.format('x') }}", r"str\.format\(\) would make a value"),
    ("{{ '%999999999s' % 'x' }}", r"`%` would make a value"),
    ("{{ '%*s'|format(999999999, 'x') }}", r"filter 'format' would make a value"),
    ("{{ range(100000)|map('string')|map('center', 100)|list|length }}", r"filter 'list' would make a value"),
    ("{{ 'x'|indent('y' * 999999) ~ ('\n' * 999)|indent('y' * 999999) }}", r"filter 'indent' would make a value"),
    # output past the cap; Python code a template calls that runs for ever (textwrap on one long word)
    ("{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}", r"output passed 1,000,000 characters"),
    ("{{ ('x' * 400000)|wordwrap(1) }}", r"took longer than 1 s"),
]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


@pytest.mark.parametrize(("source", "reason"), BOMBS)
def test_bombs_stop_quickly_with_the_reason(source: str, reason: str) -> None:
    peak = _peak_rss_mb()
    start = time.monotonic()
    with pytest.raises(TemplateError, match=reason):
        render(compile_template(source), {})
    assert time.monotonic() - start < 2.0
    if sys.platform == "linux":
        assert _peak_rss_mb() - peak < 200, "the render should not have allocated hundreds of MB"


def test_jinja_power_is_left_associative_so_this_one_is_small() -> None:
    # Jinja reads 10**10**8 as (10**10)**8, unlike Python: it is a plain 81-digit number.
    assert render(compile_template("{{ 10**10**8 }}"), {}) == "1" + "0" * 80


def test_a_shorter_deadline_can_be_given() -> None:
    start = time.monotonic()
    with pytest.raises(TemplateError, match=r"longer than 0\.2 s"):
        render(compile_template("{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"),
               {}, Limits(seconds=0.2))
    assert time.monotonic() - start < 1.0


def test_the_previous_tracer_is_restored() -> None:
    calls: list[str] = []

    def tracer(frame: Any, event: str, arg: Any) -> None:
        calls.append(event)

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        render(compile_template("{{ x }}"), {"x": 1})
        with pytest.raises(TemplateError):
            render(compile_template("{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"),
                   {}, Limits(seconds=0.05))
        assert sys.gettrace() is tracer
    finally:
        sys.settrace(previous)


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("{{ tags.append('x') }}", r"access to attribute 'append' of 'list' object is unsafe.*build new values"),
        ("{{ meta.update({'a': 1}) }}", r"'update' of 'dict' object is unsafe"),
        ("{% set _ = meta.pop('k') %}", r"'pop' of 'dict' object is unsafe"),
        ("{{ text.__class__.__mro__ }}", r"'__class__' of 'str' object is unsafe"),
    ],
)
@pytest.mark.parametrize("strict", [True, False])
def test_templates_cannot_change_the_record(source: str, reason: str, strict: bool) -> None:
    record = {"tags": ["a"], "meta": {"k": 1}, "text": "hi"}
    with pytest.raises(TemplateError, match=reason):
        render(compile_template(source, strict=strict), record)
    assert record == {"tags": ["a"], "meta": {"k": 1}, "text": "hi"}


NORMAL = [
    "Reply to {{ name }}:\n{{ text }}\n",
    "{{ text|upper }} {{ text|title|center(20) }}|{{ tags|join(', ') }}|{{ tags|length }}",
    "{% for t in tags %}{{ loop.index }}. {{ t|e }}{% if not loop.last %}; {% endif %}{% endfor %}",
    "{{ 'Re: ' ~ subject ~ ' (' ~ n ~ ')' }} {{ n + 1 }} {{ n * 3 }} {{ n ** 2 }} {{ n % 4 }} {{ n / 4 }} {{ n // 4 }}",
    "{{ '%s scored %.2f' % (name, score) }} {{ '%(name)s!'|format(name=name) }} {{ '{} / {:>6}'.format(name, n) }}",
    "{{ 'ab' * 3 }} {{ [1, 2] * 2 }} {{ tags + ['z'] }} {{ 2 ** 100 }} {{ -n }}",
    "{{ text|replace('o', '0') }} {{ text|truncate(9) }} {{ text|wordwrap(6) }} {{ text|indent(2, first=true) }}",
    "{% macro card(x) %}[{{ x }}]{% endmacro %}{{ card(name) }}{% set ns = namespace(s='') %}"
    "{% for t in tags %}{% set ns.s = ns.s ~ t %}{% endfor %}{{ ns.s }}",
    "{% set block %}{{ name }} / {{ n }}{% endset %}{{ block|trim }} {{ meta|dictsort }} {{ meta|tojson }}",
    "{{ tags|map('upper')|join }} {{ range(3)|list }} {{ tags|batch(2)|list }} {{ tags|sort|first }}",
    "{% filter upper %}{{ name }}{% endfilter %}{{ text.split()|join('-') }} {{ 'x'.center(5) }}|",
    "trailing newline kept in generate, dropped in map\n",
]
CONTEXT = {"name": "Ann", "text": "hello world, good morning", "tags": ["b", "a", "c"], "n": 7, "score": 0.456,
           "subject": "Invoice", "meta": {"k": 1, "a": [1, 2]}}


@pytest.mark.parametrize("source", NORMAL)
@pytest.mark.parametrize("strict", [True, False])
def test_normal_templates_render_exactly_as_before(source: str, strict: bool) -> None:
    # What generate (strict, keeps the trailing newline) and map (neither) used before this module.
    before = (SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
              if strict else SandboxedEnvironment(autoescape=False))
    expected = before.from_string(source).render(**CONTEXT)
    assert render(compile_template(source, strict=strict, keep_trailing_newline=strict), CONTEXT) == expected


def test_undefined_fields_fail_only_when_strict() -> None:
    source = "Hi {{ customer }}!"
    assert render(compile_template(source), {}) == "Hi !"
    with pytest.raises(TemplateError, match=r"'customer' is undefined\. Check the field name"):
        render(compile_template(source, strict=True), {})


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("{{ x ", r"template error on template line 1: unexpected end of template"),
        ("{{ x|no_such_filter }}", r"No filter named 'no_such_filter'"),
        ("{{ " + "(" * 1000 + "x" + ")" * 1000 + " }}", r"nested too deeply to compile.*\{% set part"),
        ("{{ " + "-(" * 500 + "x" + ")" * 500 + " }}", r"nested too deeply to compile"),
    ],
)
def test_compile_errors_are_template_errors(source: str, reason: str) -> None:
    start = time.monotonic()
    with pytest.raises(TemplateError, match=reason):
        compile_template(source)
    assert time.monotonic() - start < 2.0


def test_other_render_errors_name_the_problem() -> None:
    with pytest.raises(TemplateError, match=r"template failed: ZeroDivisionError"):
        render(compile_template("{{ 1 / 0 }}"), {})
    with pytest.raises(TemplateError, match=r"Range too big.*Loop over fewer items"):
        render(compile_template("{{ range(10**6)|list }}"), {})


# --- the map step -------------------------------------------------------------------------------


def map_pipeline(tmp_path: Path, set_: dict[str, str], on_error: str = "quarantine") -> Pipeline:
    return Pipeline.from_yaml(f"""
name: m
steps:
  - {{id: shape, type: map, on_error: {on_error}, with: {{set: {json.dumps(set_)}}}}}
""", base_dir=tmp_path, home=tmp_path / "home")


RECORDS = [{"id": "a", "text": "one", "tags": ["x"]}, {"id": "b", "text": "two", "tags": ["y"]}]


def test_map_bomb_quarantines_the_record_with_the_reason(tmp_path: Path) -> None:
    source = "{% if text == 'two' %}{{ 'x' * 10**9 }}{% else %}{{ text|upper }}{% endif %}"
    start = time.monotonic()
    run = map_pipeline(tmp_path, {"loud": source}).run(records=RECORDS)
    assert time.monotonic() - start < 10
    assert run.status == "succeeded"
    assert {r["id"]: r["loud"] for r in run.records("shape")} == {"a": "ONE"}
    (row,) = [json.loads(line) for line in run.quarantine_path.read_text().splitlines()]
    assert row["id"] == "b" and row["step"] == "shape" and row["record"]["tags"] == ["y"]
    assert "template for 'loud': `*` would make a value of about 1,000,000,000 characters" in row["reason"]


def test_map_template_cannot_change_the_record(tmp_path: Path) -> None:
    run = map_pipeline(tmp_path, {"n": "{{ tags.append('z') }}{{ tags|length }}"}).run(records=RECORDS)
    assert list(run.records("shape")) == []
    reasons = [json.loads(line)["reason"] for line in run.quarantine_path.read_text().splitlines()]
    assert len(reasons) == 2 and all("'append' of 'list' object is unsafe" in r for r in reasons)
    assert RECORDS[0]["tags"] == ["x"]


def test_map_template_error_fails_the_run_without_quarantine(tmp_path: Path) -> None:
    run = map_pipeline(tmp_path, {"loud": "{{ lipsum(10**6) }}"}, on_error="fail").run(records=RECORDS[:1])
    assert run.status == "failed"
    assert run.error is not None
    assert "could not process record 'a': template for 'loud': lipsum(1000000, max=100) is too long" in run.error


def test_map_template_nested_too_deeply_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"template for 'x' is invalid: template is nested too deeply"):
        map_pipeline(tmp_path, {"x": "{{ " + "(" * 1000 + "text" + ")" * 1000 + " }}"})
