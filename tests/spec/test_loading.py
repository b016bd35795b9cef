"""Loading behaviours beyond single located mistakes: all problems in one pass, dates stay text,
inspection without the run's environment, broken plugins."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from matcha import Pipeline, PipelineError
from matcha.registry import Registry

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def test_step_checks_still_run_after_an_unknown_model(tmp_path: Path) -> None:
    text = """
name: t
steps:
  - {id: d, type: generate, with: {model: nope, prompt_file: prompts/missing.j2}}
"""
    with pytest.raises(PipelineError) as info:
        Pipeline.from_yaml(text, base_dir=tmp_path)
    messages = [i.message for i in info.value.issues]
    assert any("unknown model 'nope'" in m for m in messages), messages
    assert any("cannot read prompt file" in m for m in messages), messages


@pytest.mark.parametrize("value", ["2001-13-45", "0000-00-00", "2024-01-01", "="])
def test_date_like_and_odd_plain_scalars_stay_text(tmp_path: Path, value: str) -> None:
    p = Pipeline.from_yaml(f"name: t\ndescription: {value}\nsteps:\n  - {{id: a, type: filter, "
                           "with: {condition: 'x == 1'}}\n", base_dir=tmp_path)
    assert p._plan.spec.description == value


def test_alias_bomb_is_refused_quickly() -> None:
    levels = "".join(f"l{i}: &l{i} [{', '.join(['x' if i == 0 else f'*l{i - 1}'] * 9)}]\n" for i in range(9))
    start = time.perf_counter()
    with pytest.raises(PipelineError, match="expands to more than"):
        Pipeline.from_yaml(levels + "name: t\nsteps: []\n")
    assert time.perf_counter() - start < 5.0  # refused in milliseconds; expanded, 9**9 values


def test_reasonable_aliases_still_work(tmp_path: Path) -> None:
    text = """
name: t
models:
  a: &base {provider: openai, base_url: "http://127.0.0.1:9/v1", model: one}
  b: {<<: *base, model: two}
steps:
  - {id: x, type: generate, with: {model: b, prompt: "{{ text }}"}}
"""
    plan = Pipeline.from_yaml(text, base_dir=tmp_path)._plan
    assert plan.models["b"].model == "two" and plan.models["b"].base_url == "http://127.0.0.1:9/v1"


def test_prompt_template_nested_1000_deep_is_a_located_problem(tmp_path: Path) -> None:
    deep = "(" * 1000 + "x" + ")" * 1000
    with pytest.raises(PipelineError) as info:
        Pipeline.from_yaml(f"name: t\nsteps:\n  - {{id: g, type: generate, with: {{prompt: '{{{{ {deep} }}}}'}}}}\n",
                           base_dir=tmp_path)
    issue = info.value.issues[0]
    assert issue.line == 3 and issue.path.startswith("steps[0].with"), str(issue)


def test_library_error_text_masks_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATCHA_TEST_TOKEN", "tok-SUPERSECRET-123")
    text = "name: t\nsettings: {batch_size: '${env:MATCHA_TEST_TOKEN}'}\nsteps:\n" \
           "  - {id: a, type: filter, with: {condition: 'x == 1'}}\n"
    with pytest.raises(PipelineError) as info:
        Pipeline.from_yaml(text, base_dir=tmp_path)
    assert "SUPERSECRET" not in str(info.value) and "***" in str(info.value)


def test_broken_plugin_is_reported_where_it_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    ep = EntryPoint(name="broken", value="matcha_no_such_plugin:Step", group="matcha.steps")
    monkeypatch.setattr("matcha.registry.entry_points", lambda group: [ep])
    reg: Registry[object] = Registry("step type", "matcha.steps", [])
    assert reg.names() == []  # listing works
    assert reg.get("broken") is None
    hint = reg.unknown_hint("broken")
    assert "matcha_no_such_plugin:Step" in hint and "failed to load" in hint and "ModuleNotFoundError" in hint


def test_cli_names_the_package_of_a_broken_entry_point(tmp_path: Path) -> None:
    """A real installed distribution whose entry point cannot be imported: validate still works for
    pipelines that do not use it, and a pipeline that does gets a message naming the package."""
    site = tmp_path / "site"
    dist = site / "matcha_broken_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: matcha-broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[matcha.steps]\nshiny = matcha_broken_plugin_missing:Shiny\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    ok = subprocess.run([sys.executable, "-m", "matcha", "validate", "pipelines/triage.yaml"], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "Traceback" not in ok.stderr
    (tmp_path / "p.yaml").write_text("name: t\nsteps:\n  - {id: s, type: shiny}\n")
    bad = subprocess.run([sys.executable, "-m", "matcha", "validate", str(tmp_path / "p.yaml")], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "matcha-broken-plugin" in bad.stderr and "failed to load" in bad.stderr, bad.stderr


def test_an_aliased_mapping_with_merge_overrides_loads_at_every_alias(tmp_path: Path) -> None:
    from matcha.spec.yamlload import load_located

    data = load_located("base: &b {x: 1, y: 2}\na: &a {<<: *b, x: 3}\nc: *a\nd: *a\n", "f").data
    assert data["a"] == data["c"] == data["d"] == {"x": 3, "y": 2}


@pytest.mark.parametrize(("text", "expect"), [
    ("? 0x" + "f" * 5000 + "\n: 1\nname: t\nsteps: []\n", r"unknown field|at least 1"),  # a key with no str()
    ("".join(f"a{i}: &a{i} " + "[" * 40 + (f"*a{i - 1}" if i else "x") + "]" * 40 + "\n" for i in range(3))
     + "name: t\nsteps: []\n", r"through the alias \*a0, values are nested more than 64 levels"),
])
def test_keys_and_aliases_that_used_to_escape_are_located(text: str, expect: str) -> None:
    with pytest.raises(PipelineError, match=expect) as info:
        Pipeline.from_yaml(text)
    assert all(i.line >= 1 for i in info.value.issues)


def _needs_list(n: int) -> str:
    return ("name: t\nsteps:\n  - {id: a, type: filter, with: {condition: 'x == 1'}}\n  - {id: b, type: filter, "
            "with: {condition: 'x == 1'}, needs: [" + ", ".join(["a"] * n) + "]}\n")


def _merge_keys(n: int) -> str:
    return ("base: &b {" + ", ".join(f"k{i}: 1" for i in range(n)) + "}\nover: {<<: *b, "
            + ", ".join(f"k{i}: 2" for i in range(n)) + "}\nname: t\nsteps: []\n")


@pytest.mark.parametrize(("make", "n"), [(_needs_list, 5_000), (_merge_keys, 1_250)])
def test_large_hostile_lists_are_checked_in_linear_time(make: Callable[[int], str], n: int) -> None:
    """Four times the items cost about four times the time (measured 2.7-4.8x; a quadratic check
    costs 16x): a ratio, so a slow or busy machine does not fail it, as an absolute bound did."""
    def seconds(text: str) -> float:
        start = time.perf_counter()
        with pytest.raises(PipelineError):
            Pipeline.from_yaml(text)
        return time.perf_counter() - start

    small, big = seconds(make(n)), seconds(make(4 * n))
    assert big < 9 * small + 0.1, f"{n} items: {small:.2f} s; {4 * n} items: {big:.2f} s"


def test_review_output_escapes_every_invisible_character() -> None:
    from matcha.cli.render import literal

    assert literal("plain é 😀\nnext\tline") == "plain é 😀\nnext\tline"
    for hidden, shown in [("\x1b[8m", "\\x1b[8m"), ("\u202e", "\\u202e"), ("\U000e0041", "\\U000e0041"),
                          ("\u00ad", "\\xad"), ("\u2028", "\\u2028"), ("\u200b", "\\u200b"), ("\x07", "\\x07")]:
        assert literal(f"a{hidden}b") == f"a{shown}b"
