"""What a step changed is found from the notes its records keep (or, failing that, a copy): the
store then holds exactly what a plain application of the step gives, however the step writes."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path
from typing import Any

import pytest
from support import write

from matcha import Pipeline
from matcha.runtime.tracked import MISSING, Tracked

pytestmark = pytest.mark.unit


def test_every_kind_of_write_is_noted_with_the_value_before() -> None:
    rec = Tracked(a=1, b=2, c=3, d=4)
    rec["a"] = 10
    rec["a"] = 11  # the first value before is kept
    del rec["b"]
    assert rec.pop("c") == 3 and rec.pop("zz", None) is None
    rec.setdefault("d", 99)  # present: not a change
    rec.setdefault("e", 5)
    rec.update({"f": 6}, g=7)
    rec |= {"h": 8}
    assert rec.was == {"a": 1, "b": 2, "c": 3, "e": MISSING, "f": MISSING, "g": MISSING, "h": MISSING}
    assert rec.original() == {"a": 1, "b": 2, "c": 3, "d": 4}
    assert rec == {"a": 11, "d": 4, "e": 5, "f": 6, "g": 7, "h": 8}
    rec.forget()
    rec.clear()
    assert rec.original() == {"a": 11, "d": 4, "e": 5, "f": 6, "g": 7, "h": 8} and rec == {}
    rec2 = Tracked(x=1)
    assert rec2.popitem() == ("x", 1) and rec2.original() == {"x": 1}


def test_a_tracked_record_reads_serialises_and_copies_as_a_plain_dict() -> None:
    rec = Tracked(a=1, b=[1, 2])
    rec["c"] = "x"
    assert json.dumps(rec) == '{"a": 1, "b": [1, 2], "c": "x"}' and isinstance(rec, dict)
    for other in (pickle.loads(pickle.dumps(rec)), copy.deepcopy(rec), copy.copy(rec), dict(rec), rec.copy()):
        assert type(other) is dict and other == rec


STEPS = '''
import copy

def set_new(b):
    for r in b: r["n2"] = r["n"] * 2
    return b

def replace(b):
    for r in b: r["text"] = r["text"].upper()
    return b

def same_value(b):
    for r in b: r["n"] = r["n"]
    return b

def remove_all(b):
    for r in b: del r["text"]
    return b

def remove_some(b):
    for r in b:
        if r["n"] % 2: r.pop("text")
    return b

def varied(b):
    for r in b:
        if r["n"] % 3 == 0: r["three"] = True
        else: r.update(other=r["n"])
    return b

def rebuild(b):
    for r in b:
        keep = {k: r[k] for k in ("id", "n")}
        r.clear(); r |= keep; r.setdefault("fresh", 1)
    return b

def new_dicts(b):
    return [{**r, "text": r["text"] + "!", "copied": True} for r in b]

def nested(b):
    for r in b: r["meta"]["k"].append(r["n"])   # in place, inside a nested value
    return b

def subset(b):
    for r in b: r["kept"] = 1
    return [r for r in b if r["n"] % 4]

def back_and_forth(b):
    for r in b:
        old = r["text"]; r["text"] = "tmp"; r["text"] = old
    return b
'''
PIPE = """
name: tracked
source: {connector: rows}
settings: {batch_size: 4}
steps:
  - {id: first, type: script, with: {function: "scripts/t.py:FN"}}
  - {id: second, type: script, with: {function: "scripts/t.py:set_new"}}
"""
ROWS = [{"id": f"r{i}", "n": i, "text": f"text {i}", "meta": {"k": [i]}} for i in range(10)]


def _plain(fn: str) -> list[dict[str, Any]]:
    env: dict[str, Any] = {}
    exec(STEPS, env)  # the test's own functions
    out: list[dict[str, Any]] = []
    for lo in range(0, len(ROWS), 4):
        out += env[fn](copy.deepcopy(ROWS[lo:lo + 4]))
    return out


@pytest.mark.parametrize("fn", ["set_new", "replace", "same_value", "remove_all", "remove_some", "varied",
                                "rebuild", "new_dicts", "nested", "subset", "back_and_forth"])
def test_the_store_holds_what_a_plain_application_gives(project: Path, fn: str) -> None:
    write(project / "scripts" / "t.py", STEPS)
    write(project / "data" / "rows.jsonl", "\n".join(json.dumps(r) for r in ROWS) + "\n")
    write(project / "connectors" / "rows.yaml", "kind: jsonl\npath: data/rows.jsonl\n")
    run = Pipeline.from_yaml(PIPE.replace("FN", fn), base_dir=project).run().raise_for_status()
    want = _plain(fn)
    assert sorted(run.records(step="first"), key=lambda r: r["n"]) == want  # type: ignore[no-any-return]
    # the chained step saw the same records, and added its field
    second = sorted(run.records(step="second"), key=lambda r: r["n"])
    assert second == [{**r, "n2": r["n"] * 2} for r in want]
    counts = {s.step_id: s for s in run.steps()}
    assert counts["first"].out + counts["first"].dropped == len(ROWS)
