"""A seeded mutation fuzzer for pipeline files, shared by the test suite and ``benchmarks/fuzz_pipelines.py``.

Every mutated file goes through ``Pipeline.from_yaml(...).validate()``. The only acceptable outcomes
are a valid pipeline or a :class:`~matcha.errors.PipelineError` whose every issue is located (a
file and a line) and is not an internal error — each within a time bound. Anything else (another
exception, an unlocated issue, a hang) is a finding.

Seeds are the shipped pipelines plus a few richer ones written here (models, classifier examples,
JSON schema, conditions, fan-in, aliases); mutations are the classes of damage careless editors and
attackers produce: stray bytes and control characters, cut and duplicated lines, hostile scalars
(typed tags, huge numbers, dates, NUL, surrogates, templates), alias bombs, deep nesting, renamed
keys and broken indentation.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parents[1]

EXTRA_SEEDS = [
    """\
name: rich
description: every part of the format at once
models:
  writer: &writer {provider: openai, base_url: "http://127.0.0.1:8000/v1", model: m, max_concurrency: 2}
  other: {<<: *writer, model: n}
  emb: {provider: fastembed, model: sentence-transformers/all-MiniLM-L6-v2}
source: {connector: customer_messages, id_field: id, limit: 100}
settings: {batch_size: 64}
steps:
  - id: topic
    type: classify
    with:
      model: emb
      labels: [billing, delivery]
      examples:
        - {text: "I was charged twice", label: billing}
        - {text: "Refund my money", label: billing}
        - {text: "Where is my parcel", label: delivery}
        - {text: "The package is late", label: delivery}
  - id: sentiment
    type: sentiment
    needs: source
  - id: draft
    type: generate
    needs: [topic, sentiment]
    when: "sentiment == 'negative' and topic in ['billing', 'delivery']"
    on_error: quarantine
    with:
      model: writer
      prompt: "Reply to {{ customer }} about {{ topic }}: {{ text }}"
      schema: {type: object, properties: {reply: {type: string}}, required: [reply]}
      max_tokens: 64
  - id: tidy
    type: map
    with: {set: {reply_text: "{{ draft.reply }}"}, drop: [draft]}
  - id: review
    type: approval
    with: {field: reply_text, context: [customer, lang, text, topic]}
  - id: publish
    type: publish
    with: {connector: outbox}
""",
    """\
name: hooks
source: {connector: customer_messages}
steps:
  - {id: flag, type: script, with: {function: "examples/scripts/replies.py:flag_complaints"}}
  - {id: keep, type: filter, with: {condition: "complaint == true"}}
  - {id: draft, type: script, with: {function: "examples/scripts/replies.py:draft_replies", args: {sign: Team}}}
  - {id: review, type: approval, with: {field: draft, context: [customer]}}
  - {id: md, type: publish, needs: [review], with: {connector: outbox_markdown}}
  - {id: hook, type: publish, needs: [review], with: {connector: helpdesk}}
""",
]

HOSTILE_SCALARS = [
    "!!bool maybe", "2001-13-45", "0000-00-00", "!!timestamp x", "!!float x", "!!int 0x", "9" * 4400,
    "0x" + "f" * 4400, "0o" + "7" * 5000, "&a [*a]", "[" * 300 + "]" * 300, "{a: " * 200 + "1" + "}" * 200,
    "~", "null", '""', "[]", "{}", "!!python/object/apply:os.system ['true']", '"\\udc80"', '"a\\0"',
    "-1", "1e999", ".nan", "-.inf", "*undefined", "&x v", "!!binary aGVsbG8=", "!!set {a}", "!!omap [a: 1]",
    "__source__", "source", "'{{ lipsum(10**6) }}'", "'{{ " + "(" * 1000 + "x" + ")" * 1000 + " }}'",
    "'{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}'", "x" * 20000,
    '"${env:MATCHA_FUZZ_MISSING}"', '"${env:HOME}"', "'${env:'", "yes", "on", "0777", "+12", "<<", "=",
    "!", "!!str", "|\n  block", ">-\n  folded", "'it''s'", '"\\x01"', "'\\t'", "[a, b, a]", "[review, review]",
    "'a' * 10**9", "\"label == 'x' and (\" * 300", "prompts/../../etc/passwd", "/etc/passwd", "~/x.py:f",
]
KEYS = ["name", "steps", "id", "type", "needs", "with", "when", "on_error", "source", "connector", "models",
        "provider", "model", "settings", "batch_size", "prompt", "prompt_file", "schema", "examples", "labels",
        "field", "context", "function", "args", "condition", "set", "<<", "? [a]", "'': x", "id_field", "limit"]
CHARS = ["\x00", "\x01", "\x07", "\x1b", "\x7f", "\ufffe", "\u202e", "\t", "\n", "\r", " ", ":", "-", "[", "]",
         "{", "}", "'", '"', "&", "*", "!", "|", ">", "#", "%", "@", "`", ",", "?", "\\", "é", "😀", "\u0085"]


def bomb(levels: int, width: int) -> str:
    lines = [f"l0: &l0 [{', '.join(['x'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def seeds() -> list[str]:
    shipped = sorted((REPO / "pipelines").glob("*.yaml"))
    return [p.read_text(encoding="utf-8") for p in shipped] + EXTRA_SEEDS


def mutate(text: str, rng: random.Random) -> str:
    for _ in range(rng.choice((1, 1, 2, 3))):
        text = rng.choice(MUTATIONS)(text, rng)
    return text


def _insert_char(text: str, rng: random.Random) -> str:
    i = rng.randrange(len(text) + 1)
    return text[:i] + rng.choice(CHARS) * rng.choice((1, 1, 2, 5)) + text[i:]


def _delete_span(text: str, rng: random.Random) -> str:
    i = rng.randrange(len(text) + 1)
    return text[:i] + text[i + rng.randint(1, 40):]


def _lines(text: str, rng: random.Random) -> str:
    lines = text.split("\n")
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    op = rng.randrange(4)
    if op == 0:
        del lines[i]
    elif op == 1:
        lines.insert(j, lines[i])
    elif op == 2:
        lines[i], lines[j] = lines[j], lines[i]
    else:
        lines[i] = " " * rng.choice((1, 2, 3, 4, 8)) + lines[i].lstrip() if rng.random() < 0.7 else lines[i].lstrip()
    return "\n".join(lines)


def _scalar(text: str, rng: random.Random) -> str:
    spots = [i for i in range(len(text) - 1) if text[i:i + 2] == ": "]
    if not spots:
        return text + "\nname: " + rng.choice(HOSTILE_SCALARS)
    i = rng.choice(spots) + 2
    end = text.find("\n", i)
    end = len(text) if end < 0 else end
    if rng.random() < 0.5:  # replace the whole value, else only up to the next separator
        for sep in (",", "}", "]"):
            k = text.find(sep, i, end)
            if k >= 0:
                end = k
    return text[:i] + rng.choice(HOSTILE_SCALARS) + text[end:]


def _key(text: str, rng: random.Random) -> str:
    spots = [i for i in range(len(text)) if text[i] == ":" and (i + 1 == len(text) or text[i + 1] in " \n")]
    if not spots:
        return text
    i = rng.choice(spots)
    start = max(text.rfind(c, 0, i) for c in "\n{,-") + 1
    lead = len(text[start:i]) - len(text[start:i].lstrip())
    return text[:start + lead] + rng.choice(KEYS) + text[i:]


def _bomb(text: str, rng: random.Random) -> str:
    return bomb(rng.randint(2, 9), rng.randint(2, 12)) + text


def _nest(text: str, rng: random.Random) -> str:
    depth = rng.choice((10, 63, 65, 200, 1000, 5000))
    open_, close = rng.choice((("[", "]"), ("{a: ", "}")))
    return text + f"\nextra: {open_ * depth}1{close * depth}\n"


def _splice(text: str, rng: random.Random) -> str:
    other = rng.choice(seeds())
    i, j = rng.randrange(len(text) + 1), rng.randrange(len(other) + 1)
    return text[:i] + other[j:j + rng.randint(5, 200)] + text[i:]


MUTATIONS = [_insert_char, _insert_char, _delete_span, _lines, _lines, _scalar, _scalar, _scalar, _key, _key,
             _bomb, _nest, _splice]


class Hang(Exception):
    pass


@dataclass
class Report:
    cases: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    findings: list[tuple[int, str, str]] = field(default_factory=list)  # (case, what, file text)
    slowest: float = 0.0
    seconds: float = 0.0

    @property
    def bad(self) -> int:
        return sum(n for k, n in self.outcomes.items() if k not in ("valid", "located error"))


def cases(n: int, seed: int) -> Iterator[tuple[int, str]]:
    rng = random.Random(seed)
    base = seeds()
    for i in range(n):
        yield i, mutate(rng.choice(base), rng)


def check(text: str, time_limit: float) -> tuple[str, str, float]:
    """(outcome, detail, seconds) for one file: "valid", "located error", "unlocated error",
    "internal error", "exception" or "over time"."""
    from matcha import Pipeline, PipelineError

    def on_alarm(_sig: int, _frame: FrameType | None) -> None:
        raise Hang()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, time_limit * 5)  # the hard stop; the bound itself is checked below
    start = time.perf_counter()
    try:
        Pipeline.from_yaml(text, base_dir=REPO, file="fuzz.yaml").validate()
        outcome, detail = "valid", ""
    except PipelineError as exc:
        located = all(i.file and i.line >= 1 for i in exc.issues) and exc.issues
        internal = [i for i in exc.issues if "internal error" in i.message]
        outcome = "internal error" if internal else "located error" if located else "unlocated error"
        detail = str(exc)[:300]
    except Hang:
        outcome, detail = "over time", f"still running after {time_limit * 5:.0f} s"
    except BaseException as exc:  # classifying every other outcome is the point
        outcome, detail = "exception", f"{type(exc).__name__}: {str(exc)[:200]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    seconds = time.perf_counter() - start
    if seconds > time_limit and outcome in ("valid", "located error"):
        outcome, detail = "over time", f"{seconds:.2f} s"
    return outcome, detail, seconds


def run(n: int, seed: int, time_limit: float = 2.0, progress: int = 0) -> Report:
    import os

    os.environ.pop("MATCHA_FUZZ_MISSING", None)
    report = Report()
    start = time.perf_counter()
    for i, text in cases(n, seed):
        outcome, detail, seconds = check(text, time_limit)
        report.cases += 1
        report.outcomes[outcome] += 1
        report.slowest = max(report.slowest, seconds)
        if outcome not in ("valid", "located error"):
            report.findings.append((i, f"{outcome}: {detail}", text))
        if progress and (i + 1) % progress == 0:
            print(f"  {i + 1:,} files, {report.bad} findings, {time.perf_counter() - start:.0f} s", flush=True)
    report.seconds = time.perf_counter() - start
    return report
