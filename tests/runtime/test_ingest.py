"""Ingest: every source row is one row of the source step, under an id no other row has."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from support import store_location

from matcha.connectors.base import SourceRow
from matcha.connectors.files import CsvSource, JsonlSource
from matcha.errors import ConnectorError
from matcha.runtime import ingest as ingest_module
from matcha.runtime.executor import Runner
from matcha.runtime.ingest import MAX_DEPTH, ingest, records_as_rows
from matcha.runtime.store import RunStore
from matcha.spec.graph import SOURCE

pytestmark = pytest.mark.unit


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    s = RunStore(store_location(tmp_path / "runs.db"))
    yield s
    s.close()


def rows_of(store: RunStore, run_id: str = "r") -> dict[str, tuple[str, str | None, dict[str, Any]]]:
    """record id -> (status, reason, data) of the source step, read straight from the store."""
    got = sorted(store.step_rows(run_id, SOURCE), key=lambda r: r[1])
    return {rid: (status, reason, data) for rid, _seq, status, reason, data, _gone, _link in got}


def csv_rows(tmp_path: Path, text: str) -> list[SourceRow]:
    (tmp_path / "in.csv").write_text(text)
    return list(CsvSource("in", CsvSource.Config(kind="csv", path="in.csv"), base_dir=tmp_path).read())


def assert_counts_add_up(store: RunStore, n: int, run_id: str = "r") -> None:
    c = store.step_counts(run_id, SOURCE, [])
    assert c.received == n == c.out + c.dropped + c.quarantined


# A row without id at line 3 gets `line-3` and a duplicate at line 5 gets `line-5-dup`: real records
# with exactly those ids come after them (made-up first) or before them (real first).
MADE_UP_FIRST = "id,text\na,one\n,no id\nline-3,real three\na,again\nline-5-dup,real dup\nb,last\n"
REAL_FIRST = "id,text\nline-4,real four\nline-5-dup,real dup\n,no id\nline-4,again\n"


@pytest.mark.parametrize("chunk", [1000, 2, 1], ids=["buffered", "chunk-2", "chunk-1"])
def test_made_up_ids_never_overwrite_real_records(
    tmp_path: Path, store: RunStore, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(ingest_module, "CHUNK", chunk)  # small chunks: renames hit rows already written
    ingest(store, "r", csv_rows(tmp_path, MADE_UP_FIRST), "id")
    got = rows_of(store)
    assert_counts_add_up(store, 6)
    assert {rid: v[2].get("text") for rid, v in got.items() if v[0] == "out"} == {
        "a": "one", "line-3": "real three", "line-5-dup": "real dup", "b": "last"}
    quarantined = {v[1]: rid for rid, v in got.items() if v[0] == "quarantined"}
    assert set(quarantined.values()).isdisjoint({"a", "b", "line-3", "line-5-dup"})
    assert sorted(quarantined) == ["line 3: no value in id field 'id' (set source.id_field, or null to number rows)",
                                   "line 5: duplicate id 'a'"]


def test_made_up_id_taken_by_an_earlier_real_record_gets_a_suffix(tmp_path: Path, store: RunStore) -> None:
    ingest(store, "r", csv_rows(tmp_path, REAL_FIRST), "id")
    got = rows_of(store)
    assert_counts_add_up(store, 4)
    assert got["line-4"][:2] == ("out", None) and got["line-5-dup"][:2] == ("out", None)
    assert got["line-4~2"][0] == "quarantined" and "no value in id field" in str(got["line-4~2"][1])
    assert got["line-5-dup~2"][0] == "quarantined" and "duplicate id 'line-4'" in str(got["line-5-dup~2"][1])


def test_renamed_id_can_itself_be_claimed(store: RunStore) -> None:
    records: list[Any] = ["not a mapping", {"id": "line-1"}, {"id": "line-1~2"}, {"id": "line-1~3"}]
    ingest(store, "r", records_as_rows(records), "id")
    got = rows_of(store)
    assert_counts_add_up(store, 4)
    assert [rid for rid, v in got.items() if v[0] == "out"] == ["line-1", "line-1~2", "line-1~3"]
    assert [rid for rid, v in got.items() if v[0] == "quarantined"] == ["line-1~4"]


@pytest.mark.parametrize("crash_after", [1, 2, 3, 4, 5])
def test_reingest_after_a_crash_writes_the_same_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_after: int
) -> None:
    monkeypatch.setattr(ingest_module, "CHUNK", 2)
    rows = csv_rows(tmp_path, MADE_UP_FIRST + ",again no id\nline-3~2,real suffix\n")
    crashed = clean = RunStore(store_location(tmp_path / "runs.db"))  # two runs of one store
    ingest(clean, "clean", rows, "id")
    ingest(crashed, "r", rows, "id", limit=crash_after)  # what a crash after that row leaves behind
    ingest(crashed, "r", rows, "id")  # the resume
    assert rows_of(crashed) == rows_of(clean, "clean")
    assert_counts_add_up(crashed, len(rows))
    ingest(crashed, "r", rows, "id")  # and once more: idempotent
    assert rows_of(crashed) == rows_of(clean, "clean")
    clean.close()
    crashed.close()


def nested(depth: int) -> dict[str, Any]:
    """Fields making a record ``depth`` levels deep (the record itself being the first)."""
    value: Any = 1
    for i in range(depth - 1):
        value = [value] if i % 2 else {"x": value}
    return {"deep": value}


def test_deep_and_unstorable_records_are_quarantined(store: RunStore) -> None:
    circular: dict[str, Any] = {"id": "loop"}
    circular["self"] = circular
    records = [
        {"id": "ok", **nested(MAX_DEPTH)},
        {"id": "deep", **nested(MAX_DEPTH + 1)},
        {"id": "very-deep", **nested(5000)},
        {"id": "huge", "n": 10**5000},
        circular,
        {"id": "last"},
    ]
    ingest(store, "r", records_as_rows(records), "id")
    got = rows_of(store)
    assert_counts_add_up(store, 6)
    assert {rid for rid, v in got.items() if v[0] == "out"} == {"ok", "last"}
    reasons = {rid: v[1] for rid, v in got.items() if v[0] == "quarantined"}
    assert reasons == {
        "line-2": f"line 2: nested more than {MAX_DEPTH} levels deep; flatten the record",
        "line-3": f"line 3: nested more than {MAX_DEPTH} levels deep; flatten the record",
        "huge": "line 4: cannot be stored: a number has more than 4300 digits; pass it as a string",
        "line-5": f"line 5: nested more than {MAX_DEPTH} levels deep; flatten the record",
    }


def test_jsonl_with_unreadable_lines_counts_add_up(tmp_path: Path, store: RunStore) -> None:
    lines = ['{"id": "a"}', '{"id": "b", "n": ' + "1" * 5000 + "}", "[" * 100_000 + "]" * 100_000,
             '{"id": "c", "deep": ' + "[" * 200 + "]" * 200 + "}", '{"id": "d"}']
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    source = JsonlSource("in", JsonlSource.Config(kind="jsonl", path="in.jsonl"), base_dir=tmp_path)
    ingest(store, "r", source.read(), "id")
    got = rows_of(store)
    assert_counts_add_up(store, 5)
    assert [rid for rid, v in got.items() if v[0] == "out"] == ["a", "d"]
    assert [v[1] for v in got.values() if v[0] == "quarantined"] == [
        "line 2: a number has more than 4300 digits; write it as a string",
        "line 3: JSON nested too deeply to read; flatten the record",
        f"line 4: nested more than {MAX_DEPTH} levels deep; flatten the record",
    ]


# -- `matcha run --input FILE`: encoding and delimiter come from the run's params -------------------
def input_source(params: dict[str, Any]) -> Any:
    runner = Runner(cast(Any, None), cast(Any, None), "r", params)  # --input needs neither plan nor store
    return runner._source()


def test_input_encoding_and_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes("id;text\nm1;caf\xe9\n".encode("latin-1"))
    assert [r.data for r in input_source({"input": str(path), "input_encoding": "latin-1",
                                          "input_delimiter": ";"}).read()] == [{"id": "m1", "text": "café"}]
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_bytes('{"id": "m1", "text": "caf\xe9"}\n'.encode("cp1252"))
    assert [r.data for r in input_source({"input": str(jsonl), "input_encoding": "cp1252"}).read()] == [
        {"id": "m1", "text": "café"}]


def test_input_defaults_and_encoding_hint(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b"id,text\nm1,caf\xe9\n")
    [row] = input_source({"input": str(path)}).read()
    assert row.error == ("undecodable byte 0xe9 for encoding utf-8; run again with --encoding "
                         "(e.g. latin-1, cp1252) or fix the file")


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("in.csv", {"input_encoding": "utf-99"}, r"cannot read --input in.csv: --encoding: unknown encoding 'utf-99'"),
        ("in.csv", {"input_delimiter": ";;"}, r"--input in.csv: --delimiter: String should have at most 1 character"),
        ("in.jsonl", {"input_delimiter": ";"}, r"--delimiter applies to CSV files, but in.jsonl is read as JSON"),
    ],
)
def test_bad_input_options(tmp_path: Path, name: str, params: dict[str, Any], match: str) -> None:
    with pytest.raises(ConnectorError, match=match):
        input_source({"input": str(tmp_path / name), **params})
