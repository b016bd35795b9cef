"""Broken pipeline files, one per row: each must give exactly one located, actionable issue.

Every row is a small complete pipeline written into a throwaway project (see ``conftest.py``):
connectors ``messages`` (csv source), ``outbox`` (file publisher) and ``hook`` (webhook), and
``scripts/s.py`` defining ``f``. A row gives the file the issue must be reported in (the pipeline
unless the mistake is in a connection file), the 1-based line and column, the field path, and a
regex searched in "message. hint" — so rows check the fix hint as well as the diagnosis.

The project fixtures live here, not in a ``tests/spec/conftest.py``: other test folders do
``from support import ...``, and a second rootless ``conftest`` module would shadow theirs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from matcha import ConfigIssue, Pipeline, PipelineError
from matcha.cli.main import app

pytestmark = pytest.mark.unit

PIPELINE = "pipelines/p.yaml"
CONNECTORS = {
    "messages": "kind: csv\npath: data/messages.csv\n",
    "outbox": "kind: file\npath: out/replies.jsonl\nformat: jsonl\n",
    "hook": "kind: webhook\nurl: https://hooks.example.com/matcha\nsecret_env: MATCHA_TEST_HOOK_SECRET\n",
}
FILES = {
    "data/messages.csv": "id,customer,text\nm1,Ann,My order is late\nm2,Bob,All good\n",
    "scripts/s.py": "def f(batch):\n    return batch\n",
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Project root with connectors messages (csv source), outbox (file publisher), hook (webhook)."""
    files = {**FILES, **{f"connectors/{name}.yaml": text for name, text in CONNECTORS.items()}}
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    (tmp_path / "pipelines").mkdir()
    return tmp_path


@pytest.fixture
def write_pipeline(project: Path) -> Callable[..., Path]:
    """Write ``pipelines/p.yaml`` (and any ``extra`` files, relative to the project); return its path."""

    def write(text: str, extra: dict[str, str] | None = None) -> Path:
        for rel, content in (extra or {}).items():
            (project / rel).parent.mkdir(parents=True, exist_ok=True)
            (project / rel).write_text(content, encoding="utf-8")
        path = project / PIPELINE
        path.write_text(text, encoding="utf-8")
        return path

    return write


HEAD = "name: t\nsource: {connector: messages}\nsteps:\n"  # steps start on line 4
SCRIPT = "  - id: a\n    type: script\n    with: {function: 'scripts/s.py:f'}\n"  # 3 lines
GATE = "  - id: review\n    type: approval\n  - id: out\n    type: publish\n    with: {connector: outbox}\n"


def publish_to(connector: str) -> str:
    return HEAD + GATE.replace("connector: outbox", f"connector: {connector}")


def case(id_: str, text: str, line: int, col: int, path: str, expect: str, *, file: str = PIPELINE,
         extra: dict[str, str] | None = None) -> Any:
    return pytest.param(text, line, col, path, expect, file, extra or {}, id=id_)


CASES = [
    # --- YAML syntax and safety -------------------------------------------------------------------
    case("yaml-bad-indentation",
         "name: t\nsteps:\n  - id: a\n    type: script\n   with: {function: 'scripts/s.py:f'}\n",
         5, 4, "", r"YAML syntax error: expected <block end>.*Check indentation"),
    case("yaml-unclosed-quote",
         "name: t\nsteps:\n  - id: a\n    type: script\n    with: {function: \"scripts/s.py:f}\n",
         6, 1, "", r"unexpected end of stream \(while scanning a quoted scalar started at line 5, column 22\)"),
    case("yaml-tab-indentation", "name: t\nsteps:\n\t- id: a\n",
         3, 1, "", r"found character '\\t' that cannot start any token.*tabs are not allowed"),
    case("yaml-two-documents", "name: t\nsteps: []\n---\nname: u\n",
         3, 1, "", r"expected a single document in the stream, but found another document"),
    case("tag-python-object-apply-list", "name: !!python/object/apply:os.system ['touch pwned']\nsteps: []\n",
         1, 7, "name", r"tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed.*data only"),
    case("tag-python-object-apply-scalar", "name: t\nsteps:\n  - id: !!python/object/apply:os.system 'touch pwned'\n",
         3, 9, "steps[0].id", r"python/object/apply:os.system' is not allowed.*data only"),
    case("tag-python-name", HEAD + "  - id: a\n    type: script\n    with: {function: !!python/name:os.system ''}\n",
         6, 22, "steps[0].with.function", r"tag 'tag:yaml.org,2002:python/name:os.system' is not allowed"),
    case("tag-python-tuple", "name: t\nsteps: !!python/tuple [a]\n",
         2, 8, "steps", r"python/tuple' is not allowed.*write a plain list"),
    case("empty-file", "", 1, 1, "", r"the file is empty.*`name:` and `steps:`"),
    case("comments-only", "# nothing here yet\n", 1, 1, "", r"the file is empty"),
    case("top-level-list", "- id: a\n  type: script\n", 1, 1, "", r"must be a mapping with `name:` and `steps:`"),
    case("duplicate-key-top-level", "name: t\nsource: {connector: messages}\nname: u\nsteps:\n" + GATE,
         3, 1, "name", r"duplicate key 'name'.*remove or rename one"),
    case("duplicate-key-in-with",
         HEAD + "  - id: a\n    type: script\n    with:\n      function: 'scripts/s.py:f'\n"
         "      function: 'scripts/s.py:f'\n" + GATE,
         8, 7, "steps[0].with.function", r"duplicate key 'function'"),
    case("non-string-key", "name: t\n? [a, b]\n: 1\nsteps: []\n", 2, 3, "", r"keys must be plain strings.*e\.g\."),
    # --- top level -------------------------------------------------------------------------------
    case("missing-name", "source: {connector: messages}\nsteps:\n" + GATE,
         1, 1, "name", r"this required field is missing\. Add this field"),
    case("missing-steps", "name: t\nsource: {connector: messages}\n",
         1, 1, "steps", r"this required field is missing"),
    case("empty-steps", "name: t\nsource: {connector: messages}\nsteps: []\n",
         3, 1, "steps", r"at least 1 item.*Add at least one entry"),
    case("unknown-top-level-field", HEAD + GATE + "schedule: daily\n",
         9, 1, "schedule", r"unknown field\. Remove this field or check its spelling"),
    case("bad-pipeline-name", "name: my pipeline\nsource: {connector: messages}\nsteps:\n" + GATE,
         1, 1, "name", r"should match pattern.*got 'my pipeline'.*Use letters, digits"),
    case("batch-size-zero", HEAD + GATE + "settings: {batch_size: 0}\n",
         9, 12, "settings.batch_size", r"greater than or equal to 1 \(got 0\).*larger value"),
    case("source-limit-zero", "name: t\nsource: {connector: messages, limit: 0}\nsteps:\n" + GATE,
         2, 31, "source.limit", r"greater than or equal to 1 \(got 0\)"),
    # --- steps -----------------------------------------------------------------------------------
    case("unknown-step-type-typo", HEAD + "  - id: review\n    type: aproval\n  - id: out\n    type: publish\n"
         "    with: {connector: outbox}\n",
         5, 5, "steps[0].type",
         r"unknown step type 'aproval'.*Did you mean 'approval'\?.*Valid step types are: .*approval.*publish.*script"),
    case("unknown-field-in-with",
         HEAD + "  - id: a\n    type: script\n    with: {function: 'scripts/s.py:f', argz: {}}\n" + GATE,
         6, 40, "steps[0].with.argz", r"unknown field.*check its spelling"),
    case("wrong-type-in-with",
         HEAD + "  - id: a\n    type: script\n    with: {function: 'scripts/s.py:f', args: [1]}\n" + GATE,
         6, 40, "steps[0].with.args", r"valid dictionary.*Write a mapping"),
    case("with-not-a-mapping", HEAD + "  - id: a\n    type: script\n    with: scripts/s.py:f\n" + GATE,
         6, 5, "steps[0].with", r"valid dictionary \(got 'scripts/s.py:f'\).*Write a mapping"),
    case("missing-required-with-field", HEAD + "  - id: a\n    type: script\n" + GATE,
         4, 5, "steps[0].with.function", r"this required field is missing"),
    case("bad-step-id", HEAD + SCRIPT.replace("id: a", "id: 1st") + GATE,
         4, 5, "steps[0].id", r"should match pattern.*got '1st'.*starting with a letter"),
    case("missing-step-id", HEAD + "  - type: script\n    with: {function: 'scripts/s.py:f'}\n" + GATE,
         4, 5, "steps[0].id", r"this required field is missing"),
    case("duplicate-step-id", HEAD + SCRIPT + SCRIPT + GATE,
         7, 5, "steps[1].id", r"duplicate step id 'a' \(first used on line 4\).*unique id"),
    case("on-error-invalid",
         HEAD + "  - id: a\n    type: script\n    on_error: skip\n    with: {function: 'scripts/s.py:f'}\n" + GATE,
         6, 5, "steps[0].on_error", r"invalid value 'skip'.*Valid values are: 'fail' or 'quarantine'"),
    # --- graph -----------------------------------------------------------------------------------
    case("unknown-needs-target",
         HEAD + "  - id: a\n    type: script\n    needs: [nope]\n    with: {function: 'scripts/s.py:f'}\n" + GATE,
         6, 13, "steps[0].needs[0]", r"unknown step 'nope' in needs.*Use one of: source, a, review, out"),
    case("cycle",
         HEAD + "  - id: a\n    type: script\n    needs: [b]\n    with: {function: 'scripts/s.py:f'}\n"
         "  - id: b\n    type: script\n    needs: [a]\n    with: {function: 'scripts/s.py:f'}\n" + GATE,
         6, 5, "steps[0].needs", r"cycle: a → b → a.*Remove one of these `needs`"),
    case("needs-itself",
         HEAD + "  - id: a\n    type: script\n    needs: [a]\n    with: {function: 'scripts/s.py:f'}\n" + GATE,
         6, 5, "steps[0].needs", r"cycle: a → a"),
    case("publish-without-approval", HEAD + SCRIPT + "  - id: out\n    type: publish\n    with: {connector: outbox}\n",
         7, 5, "steps[1]", r"'out' can be reached without human approval: source → a → out.*Add an `approval` step"),
    case("publish-fan-in-skips-approval",
         HEAD + SCRIPT + "  - id: review\n    type: approval\n  - id: out\n    type: publish\n"
         "    needs: [review, a]\n    with: {connector: outbox}\n",
         9, 5, "steps[2]", r"without human approval: source → a → out"),
    # --- connectors ------------------------------------------------------------------------------
    case("unknown-source-connector", "name: t\nsource: {connector: inbox}\nsteps:\n" + GATE,
         2, 10, "source.connector", r"unknown connector 'inbox'.*defined connectors: hook, messages, outbox"),
    case("source-is-a-publisher", "name: t\nsource: {connector: outbox}\nsteps:\n" + GATE,
         2, 10, "source.connector", r"'outbox' is a publisher \(file\), not a source.*Name a source"),
    case("publish-unknown-connector", publish_to("outbx"),
         8, 12, "steps[1].with.connector", r"unknown connector 'outbx'.*defined connectors: hook, messages, outbox"),
    case("publish-names-a-source", publish_to("messages"),
         8, 12, "steps[1].with.connector", r"'messages' is a source \(csv\), not a publisher"),
    case("connector-unknown-kind", publish_to("broken"), 2, 1, "kind",
         r"unknown connector kind 'ftp'.*Valid connector kinds are: .*file.*webhook",
         file="connectors/broken.yaml", extra={"connectors/broken.yaml": "# an FTP drop\nkind: ftp\npath: x\n"}),
    case("connector-bad-yaml", publish_to("broken"), 3, 1, "", r"YAML syntax error",
         file="connectors/broken.yaml", extra={"connectors/broken.yaml": "kind: file\npath: [out\n"}),
    case("connector-bad-value", publish_to("broken"), 3, 1, "format",
         r"invalid value 'xml'.*Valid values are: 'jsonl', 'csv' or 'markdown'",
         file="connectors/broken.yaml", extra={"connectors/broken.yaml": "kind: file\npath: x\nformat: xml\n"}),
    case("connector-empty-file", publish_to("broken"), 1, 1, "", r"the file is empty.*`kind:`",
         file="connectors/broken.yaml", extra={"connectors/broken.yaml": ""}),
    case("connector-missing-env", publish_to("envhook"), 2, 1, "url",
         r"environment variable MATCHA_TEST_UNSET_URL is not set.*export MATCHA_TEST_UNSET_URL=",
         file="connectors/envhook.yaml",
         extra={"connectors/envhook.yaml": "kind: webhook\nurl: ${env:MATCHA_TEST_UNSET_URL}\n"}),
    # --- models ----------------------------------------------------------------------------------
    case("unknown-model-provider", "name: t\nmodels:\n  m: {provider: olama, model: x}\nsteps:\n" + GATE,
         3, 7, "models.m.provider",
         r"unknown model provider 'olama'.*Did you mean 'ollama'\?.*Valid model providers are"),
    case("model-provider-huge-number", "name: t\nmodels:\n  m: {provider: 0x" + "f" * 4400 + "}\nsteps:\n" + GATE,
         3, 7, "models.m.provider", r"'provider' must be the name of a model provider.*Valid model providers"),
    case("connector-kind-number", publish_to("broken"), 1, 1, "kind", r"'kind' must be the name of a connector kind",
         file="connectors/broken.yaml", extra={"connectors/broken.yaml": "kind: 0x" + "f" * 4400 + "\npath: x\n"}),
    case("model-without-provider", "name: t\nmodels:\n  m: {model: x}\nsteps:\n" + GATE,
         3, 3, "models.m.provider", r"'provider' is missing.*Valid model providers are"),
    case("model-unknown-field", "name: t\nmodels:\n  m: {provider: ollama, model: x, temprature: 1}\nsteps:\n" + GATE,
         3, 35, "models.m.temprature", r"unknown field"),
    case("model-host-missing-env",
         "name: t\nmodels:\n  m:\n    provider: ollama\n    model: x\n    host: ${env:MATCHA_TEST_UNSET_HOST}\n"
         "steps:\n" + GATE,
         6, 5, "models.m.host", r"environment variable MATCHA_TEST_UNSET_HOST is not set.*export"),
    case("step-unknown-model",
         HEAD + "  - id: a\n    type: generate\n    with: {model: gpt, prompt: 'Reply to {{ text }}'}\n" + GATE,
         6, 12, "steps[0].with.model", r"unknown model 'gpt'.*Define it under `models:` \(defined models: "),
    case("step-model-lacks-capability",
         HEAD + "  - id: a\n    type: embed\n    with: {model: default-generator}\n" + GATE,
         6, 12, "steps[0].with.model",
         r"model 'default-generator' \(provider llamacpp\) cannot embed.*supports 'embed'"),
    # --- conditions ------------------------------------------------------------------------------
    case("when-syntax-error",
         HEAD + "  - id: a\n    type: script\n    when: \"label ==\"\n    with: {function: 'scripts/s.py:f'}\n" + GATE,
         6, 5, "steps[0].when", r"invalid condition syntax.*Write a condition such as"),
    case("when-function-call",
         HEAD + "  - id: a\n    type: script\n    when: \"__import__('os').system('touch pwned')\"\n"
         "    with: {function: 'scripts/s.py:f'}\n" + GATE,
         6, 5, "steps[0].when", r"is not allowed in a condition.*Write a condition such as"),
    case("when-nested-too-deeply",
         HEAD + "  - id: a\n    type: script\n    when: \"" + "not " * 5000 + "x\"\n"
         "    with: {function: 'scripts/s.py:f'}\n" + GATE,
         6, 5, "steps[0].when", r"nested too deeply"),
    case("filter-condition-attribute",
         HEAD + "  - id: a\n    type: filter\n    with: {condition: \"x.y == 1\"}\n" + GATE,
         6, 12, "steps[0].with.condition", r"'x\.y' is not allowed in a condition"),
    # --- scripts ---------------------------------------------------------------------------------
    case("script-file-missing", HEAD + SCRIPT.replace("s.py", "nope.py") + GATE,
         6, 12, "steps[0].with.function", r"script file not found: .*scripts/nope\.py.*relative to the project root"),
    case("script-function-missing", HEAD + SCRIPT.replace("s.py:f", "s.py:g") + GATE,
         6, 12, "steps[0].with.function", r"scripts/s\.py defines no function 'g'.*Functions defined there: f"),
    case("script-function-without-colon", HEAD + SCRIPT.replace("s.py:f", "s.py") + GATE,
         6, 12, "steps[0].with.function", r"expected 'module:function' or 'path/to/file\.py:function'"),
    case("script-file-does-not-parse", HEAD + SCRIPT.replace("s.py", "broken.py") + GATE,
         6, 5, "steps[0].with", r"SyntaxError.*Fix the file", extra={"scripts/broken.py": "def f(:\n"}),
    # --- hostile files (issue 6): every class of crash the mutation fuzzer found ------------------
    case("control-char-soh", "name: t\x01\nsteps: []\n", 1, 8, "", r"control character U\+0001.*Remove it"),
    case("control-char-nul", "name: t\x00\nsteps: []\n", 1, 8, "", r"control character U\+0000"),
    case("noncharacter-fffe", "name: t\ufffe\nsteps: []\n", 1, 8, "", r"control character U\+FFFE"),
    case("bool-tag-maybe", "name: !!bool maybe\nsource: {connector: messages}\nsteps:\n" + GATE,
         1, 7, "name", r"cannot read 'maybe' as true or false.*Write true or false"),
    case("name-invalid-date", "name: 2001-13-45\nsource: {connector: messages}\nsteps:\n" + GATE,
         1, 1, "name", r"should match pattern.*got '2001-13-45'"),
    case("name-zero-date", "name: 0000-00-00\nsource: {connector: messages}\nsteps:\n" + GATE,
         1, 1, "name", r"should match pattern.*got '0000-00-00'"),
    case("timestamp-tag", "name: t\ndescription: !!timestamp x\nsource: {connector: messages}\nsteps:\n" + GATE,
         2, 14, "description", r"tag 'tag:yaml.org,2002:timestamp' is not allowed"),
    case("float-tag", "name: t\ndescription: !!float x\nsource: {connector: messages}\nsteps:\n" + GATE,
         2, 14, "description", r"cannot read 'x' as a number.*quote the value"),
    case("int-4400-digits", HEAD + GATE + "settings: {batch_size: " + "9" * 4400 + "}\n",
         9, 24, "settings.batch_size", r"cannot read '9999.*\.\.\.' as a whole number.*at most 4,300 digits"),
    case("hex-int-4400-digits", "name: t\ndescription: 0x" + "f" * 4400 + "\nsource: {connector: messages}\nsteps:\n"
         + GATE, 2, 1, "description", r"valid string \(got a number with more than 4,300 digits\)"),
    case("recursive-anchor", "name: t\nsteps: &a [*a]\n", 2, 12, "", r"alias \*a is inside the anchor &a"),
    case("nested-500-brackets", "name: t\ndescription: " + "[" * 500 + "]" * 500 + "\nsteps: []\n",
         2, 77, "", r"nested more than 64 levels deep"),
    case("alias-bomb-7x9",
         "".join(f"l{i}: &l{i} [{', '.join(['x' if i == 0 else f'*l{i - 1}'] * 9)}]\n" for i in range(7))
         + "name: t\nsteps: []\n", 6, 15, "", r"expands to more than 200,000 values.*fewer aliases"),
    case("lone-surrogate", "name: t\ndescription: \"\\udc80\"\nsource: {connector: messages}\nsteps:\n" + GATE,
         2, 14, "description", r"lone surrogate U\+DC80"),
    case("examples-file-nul",
         HEAD + "  - id: c\n    type: classify\n    with: {labels: [a, b], examples_file: \"x\\0.csv\"}\n" + GATE,
         6, 28, "steps[0].with.examples_file", r"control character \(e\.g\. NUL\)"),
    case("prompt-file-nul",
         HEAD + "  - id: g\n    type: generate\n    with: {prompt_file: \"a\\0\"}\n" + GATE,
         6, 12, "steps[0].with.prompt_file", r"control character \(e\.g\. NUL\)"),
    case("prompt-file-absolute", HEAD + "  - id: g\n    type: generate\n    with: {prompt_file: /etc/passwd}\n" + GATE,
         6, 12, "steps[0].with.prompt_file", r"'/etc/passwd' is not relative to the project"),
    case("script-path-leaves-project", HEAD + SCRIPT.replace("scripts/s.py", "../s.py") + GATE,
         6, 12, "steps[0].with.function", r"leaves the project with '\.\.'"),
    case("script-path-absolute", HEAD + SCRIPT.replace("scripts/s.py", "/tmp/s.py") + GATE,
         6, 12, "steps[0].with.function", r"not relative to the project.*connectors/"),
    # --- wiring that would validate but could not work ---------------------------------------------
    case("publish-id-dunder-source", HEAD + "  - id: review\n    type: approval\n  - id: __source__\n"
         "    type: publish\n    with: {connector: outbox}\n",
         6, 5, "steps[1].id", r"step id '__source__' is reserved.*Choose another id"),
    case("step-id-source", HEAD + SCRIPT.replace("id: a", "id: source") + GATE,
         4, 5, "steps[0].id", r"step id 'source' is reserved.*`source` names the pipeline's source"),
    case("needs-listed-twice", HEAD + GATE.replace("type: publish\n", "type: publish\n    needs: [review, review]\n"),
         8, 21, "steps[1].needs[1]", r"'review' is listed twice in needs.*List each step once"),
    case("model-api-key-env-missing",
         "name: t\nmodels:\n  m: {provider: openai, base_url: 'http://127.0.0.1:9/v1', model: x, "
         "api_key_env: MATCHA_TEST_UNSET_KEY}\nsource: {connector: messages}\nsteps:\n"
         "  - {id: d, type: generate, with: {model: m, prompt: 'Hi {{ text }}'}}\n" + GATE,
         3, 70, "models.m.api_key_env", r"MATCHA_TEST_UNSET_KEY \(the API key of model 'm'\) is not set.*export"),
    case("env-in-map-template", HEAD + "  - id: m\n    type: map\n    with: {set: {x: \"{{ '${env:HOME}'|upper }}\"}}\n"
         + GATE, 6, 18, "steps[0].with.set.x", r"a template cannot use \$\{env:\.\.\.\}.*api_key_env, secret_env"),
    case("env-in-prompt", HEAD + "  - id: g\n    type: generate\n    with: {prompt: 'Key ${env:HOME}: {{ text }}'}\n"
         + GATE, 6, 12, "steps[0].with.prompt", r"a template cannot use"),
    case("publisher-field-not-reviewed", publish_to("fields"), 8, 12, "steps[1].with.connector",
         r"publishes the field 'customer', which the reviewer does not see.*Add 'customer' to the approval",
         extra={"connectors/fields.yaml": "kind: file\npath: out/x.jsonl\nfields: [customer]\n"}),
]


@pytest.fixture(autouse=True)
def _unset_test_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MATCHA_TEST_UNSET_URL", "MATCHA_TEST_UNSET_HOST", "MATCHA_TEST_UNSET_KEY"):
        monkeypatch.delenv(name, raising=False)


def load_issue(write_pipeline: Callable[..., Path], text: str, extra: dict[str, str]) -> ConfigIssue:
    path = write_pipeline(text, extra)
    with pytest.raises(PipelineError) as info:
        Pipeline.load(path)
    issues = info.value.issues
    assert len(issues) == 1, "one mistake should give one issue:\n" + "\n".join(map(str, issues))
    return issues[0]


def check_format(issue: ConfigIssue, line: int, col: int, path: str) -> None:
    """``file:line:col: path: message. hint.`` on one line (no path part for the whole document)."""
    where = f"{issue.file}:{line}:{col}:" + (f" {path}:" if path else "")
    assert str(issue) == f"{where} {issue.message.rstrip('.')}. {issue.hint.rstrip('.')}."
    assert "\n" not in str(issue)


ARGS = ("text", "line", "col", "path", "expect", "file", "extra")


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize(ARGS, CASES)
def test_broken_pipeline_gives_located_issue(
    write_pipeline: Callable[..., Path], project: Path, text: str, line: int, col: int, path: str, expect: str,
    file: str, extra: dict[str, str],
) -> None:
    issue = load_issue(write_pipeline, text, extra)
    assert Path(issue.file).resolve() == (project / file).resolve()
    assert (issue.line, issue.col, issue.path) == (line, col, path), str(issue)
    assert issue.hint, f"no fix hint: {issue}"
    assert re.search(expect, f"{issue.message}. {issue.hint}"), str(issue)
    check_format(issue, line, col, path)


# --- the same mistakes through the command line -----------------------------------------------------

CLI_CASES = ["yaml-unclosed-quote", "tag-python-object-apply-list", "unknown-step-type-typo", "cycle",
             "publish-fan-in-skips-approval", "connector-unknown-kind", "script-file-does-not-parse",
             "control-char-soh", "int-4400-digits", "recursive-anchor", "alias-bomb-7x9", "publish-id-dunder-source",
             "needs-listed-twice", "model-api-key-env-missing"]


def _rows(ids: list[str]) -> list[Any]:
    rows = [c for c in CASES if c.id in ids]
    assert len(rows) == len(ids)
    return rows


@pytest.mark.parametrize(ARGS, _rows(CLI_CASES))
def test_cli_validate_reports_issue_without_traceback(
    write_pipeline: Callable[..., Path], project: Path, text: str, line: int, col: int, path: str, expect: str,
    file: str, extra: dict[str, str],
) -> None:
    write_pipeline(text, extra)
    env = {k: v for k, v in os.environ.items() if k != "FORCE_COLOR"}
    env.update(NO_COLOR="1", PYTHONIOENCODING="utf-8")
    proc = subprocess.run([sys.executable, "-m", "matcha", "validate", PIPELINE], cwd=project, env=env,
                          capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    shown = PIPELINE if file == PIPELINE else str((project / file).resolve())
    located = f"{shown}:{line}:{col}:" + (f" {path}:" if path else "")
    assert located in proc.stderr, proc.stderr
    assert re.search(expect, proc.stderr), proc.stderr


@pytest.mark.parametrize(ARGS, CASES)
def test_cli_runner_exits_1_without_traceback(
    write_pipeline: Callable[..., Path], project: Path, text: str, line: int, col: int, path: str, expect: str,
    file: str, extra: dict[str, str],
) -> None:
    pipeline = write_pipeline(text, extra)
    result = CliRunner().invoke(app, ["validate", str(pipeline)])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    shown = str(pipeline) if file == PIPELINE else str((project / file).resolve())
    assert f"{shown}:{line}:{col}:" + (f" {path}:" if path else "") in result.stderr, result.stderr
    assert re.search(expect, result.stderr), result.stderr


def test_cli_prints_user_text_verbatim(write_pipeline: Callable[..., Path]) -> None:
    pipeline = write_pipeline(HEAD + "  - id: a\n    type: \"[/bold]\"\n" + GATE)
    result = CliRunner().invoke(app, ["validate", str(pipeline)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "unknown step type '[/bold]'" in result.stderr
