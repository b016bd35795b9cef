from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from matcha.connectors.base import CONNECTORS, SourceRow
from matcha.connectors.files import CsvSource, JsonlSource
from matcha.errors import ConnectorError

pytestmark = pytest.mark.unit


def csv_source(tmp_path: Path, content: bytes | str, **cfg: Any) -> CsvSource:
    raw = content.encode() if isinstance(content, str) else content
    (tmp_path / "in.csv").write_bytes(raw)
    config = CsvSource.Config(kind="csv", path="in.csv", **cfg)
    return CsvSource("people", config, base_dir=tmp_path)


def jsonl_source(tmp_path: Path, content: bytes | str, **cfg: Any) -> JsonlSource:
    raw = content.encode() if isinstance(content, str) else content
    (tmp_path / "in.jsonl").write_bytes(raw)
    config = JsonlSource.Config(kind="jsonl", path="in.jsonl", **cfg)
    return JsonlSource("notes", config, base_dir=tmp_path)


def test_kinds_are_registered() -> None:
    assert CONNECTORS.get("csv") is CsvSource
    assert CONNECTORS.get("jsonl") is JsonlSource


CSV_CASES = [
    pytest.param(
        "name,age\nada,36\nalan,41\n",
        {},
        [SourceRow(2, data={"name": "ada", "age": "36"}), SourceRow(3, data={"name": "alan", "age": "41"})],
        id="plain",
    ),
    pytest.param(
        "name;age\r\nada;36\r\n",
        {"delimiter": ";"},
        [SourceRow(2, {"name": "ada", "age": "36"})],
        id="semicolon-crlf",
    ),
    pytest.param("\ufeffname,age\nada,36\n", {}, [SourceRow(2, {"name": "ada", "age": "36"})], id="bom"),
    pytest.param("name,age\n\nada,36\n", {}, [SourceRow(3, {"name": "ada", "age": "36"})], id="blank-line"),
    pytest.param(
        'name,bio\nada,"line one\nline two"\nalan,x\n',
        {},
        [
            SourceRow(2, {"name": "ada", "bio": "line one\nline two"}),
            SourceRow(4, {"name": "alan", "bio": "x"}),
        ],
        id="quoted-newline-keeps-start-line",
    ),
    pytest.param("", {}, [], id="empty-file"),
    pytest.param("name,age\n", {}, [], id="header-only"),
    pytest.param(
        "name\nJos\xe9\n".encode("latin-1"),
        {"encoding": "latin-1"},
        [SourceRow(2, {"name": "José"})],
        id="latin-1",
    ),
]


@pytest.mark.parametrize(("content", "cfg", "expected"), CSV_CASES)
def test_csv_reads_rows(
    tmp_path: Path, content: str | bytes, cfg: dict[str, Any], expected: list[SourceRow]
) -> None:
    assert list(csv_source(tmp_path, content, **cfg).read()) == expected


CSV_BAD_ROWS = [
    pytest.param("a,b\n1,2,3\n", 2, "expected 2 fields (a, b), got 3", id="too-many-fields"),
    pytest.param("a,b\n1\n", 2, "expected 2 fields (a, b), got 1", id="too-few-fields"),
    pytest.param(b"a,b\n1,caf\xe9\n", 2, "undecodable byte 0xe9 for encoding utf-8", id="undecodable"),
    pytest.param('a,b\n1,"x"y\n', 2, "CSV syntax error", id="stray-quote"),
    pytest.param(
        'a,b\n1,"never closed\n2,3\n', 2, "CSV syntax error: unexpected end of data", id="unterminated"
    ),
]


@pytest.mark.parametrize(("content", "line", "reason"), CSV_BAD_ROWS)
def test_csv_malformed_row_becomes_error_row(
    tmp_path: Path, content: str | bytes, line: int, reason: str
) -> None:
    rows = list(csv_source(tmp_path, content).read())
    assert rows[0].line == line
    assert rows[0].data is None
    assert rows[0].error is not None and reason in rows[0].error


def test_csv_keeps_reading_after_a_bad_row(tmp_path: Path) -> None:
    rows = list(csv_source(tmp_path, b'a,b\n1,2\n3\n4,\xff\n5,"x"y\n6,7\n').read())
    assert [(r.line, r.data is not None) for r in rows] == [
        (2, True),
        (3, False),
        (4, False),
        (5, False),
        (6, True),
    ]
    assert rows[-1].data == {"a": "6", "b": "7"}


def summary(rows: list[SourceRow]) -> list[tuple[int, str]]:
    """(line, first field or 'ERR') per row: enough to see which lines became which rows."""
    return [(r.line, "ERR" if r.data is None else next(iter(r.data.values()))) for r in rows]


def test_csv_unclosed_quote_does_not_swallow_the_rest_of_the_file(tmp_path: Path) -> None:
    body = "".join(f"r{i},row {i}\n" for i in range(1, 16))
    body = body.replace("r3,row 3", 'r3,"row 3 never closed')
    rows = list(csv_source(tmp_path, "id,text\n" + body).read())
    assert len(rows) == 15
    assert summary(rows)[:4] == [(2, "r1"), (3, "r2"), (4, "ERR"), (5, "r4")]
    assert rows[2].error is not None
    assert "unexpected end of data" in rows[2].error and "lines 4-16 were read as one row" in rows[2].error
    assert rows[-1] == SourceRow(16, {"id": "r15", "text": "row 15"})


@pytest.mark.parametrize(
    ("content", "expected", "reason"),
    [
        pytest.param(  # the runaway quote is closed by the next quote, followed by text
            'a,b\n1,"oops\n2,x\n3,"q"\n4,y\n',
            [(2, "ERR"), (3, "2"), (4, "3"), (5, "4")],
            "',' expected after '\"'",
            id="closed-by-a-later-quote",
        ),
        pytest.param(  # closed by a stray quote, leaving the wrong number of fields
            'a,b\n1,"oops\n2,x\n3,12",extra\n4,y\n',
            [(2, "ERR"), (3, "2"), (4, "ERR"), (5, "4")],
            "expected 2 fields (a, b), got 3; lines 2-4 were read as one row",
            id="wrong-field-count",
        ),
        pytest.param(
            'a,b\n1,"oops\n\n2,x\n',
            [(2, "ERR"), (4, "2")],
            "CSV syntax error: unexpected end of data; lines 2-4",
            id="blank-line-inside",
        ),
        pytest.param(
            'a,b\r\n1,"oops\r\n2,x\r\n3,y\r\n',
            [(2, "ERR"), (3, "2"), (4, "3")],
            "unexpected end of data",
            id="crlf",
        ),
        pytest.param(  # two runaway quotes in a row: each costs its own line only
            'a,b\n1,"oops\n2,"again\n3,x\n',
            [(2, "ERR"), (3, "ERR"), (4, "3")],
            "',' expected after '\"'",
            id="two-runaways",
        ),
    ],
)
def test_csv_runaway_quote_costs_one_line(
    tmp_path: Path, content: str, expected: list[tuple[int, str]], reason: str
) -> None:
    rows = list(csv_source(tmp_path, content).read())
    assert summary(rows) == expected
    assert rows[0].error is not None and reason in rows[0].error


def test_csv_quoted_field_spanning_many_lines_is_one_row(tmp_path: Path) -> None:
    text = "\n".join(f"line {i}, with a comma" for i in range(200))
    content = f'id,text\nr1,"{text}"\nr2,"say ""hi""\nthere"\nr3,x\n'
    rows = list(csv_source(tmp_path, content).read())
    assert rows == [
        SourceRow(2, {"id": "r1", "text": text}),
        SourceRow(202, {"id": "r2", "text": 'say "hi"\nthere'}),
        SourceRow(204, {"id": "r3", "text": "x"}),
    ]


def test_csv_runaway_quote_ending_in_a_well_formed_row_stays_inside_the_field(tmp_path: Path) -> None:
    # Indistinguishable from a quoted field spanning lines (see the module docstring): one record,
    # with the swallowed lines kept in its field rather than dropped.
    rows = list(csv_source(tmp_path, 'a,b\n1,"oops\n2,x\n3,12"\n4,y\n').read())
    assert rows == [SourceRow(2, {"a": "1", "b": "oops\n2,x\n3,12"}), SourceRow(5, {"a": "4", "b": "y"})]


@pytest.fixture
def small_field_limit() -> Iterator[int]:
    old = csv.field_size_limit(40)
    yield 40
    csv.field_size_limit(old)


@pytest.mark.usefixtures("small_field_limit")
def test_csv_runaway_quote_past_the_field_limit_is_read_again(tmp_path: Path) -> None:
    body = "".join(f"{i},row {i}\n" for i in range(3, 20))
    rows = list(csv_source(tmp_path, 'a,b\n1,"oops\n' + body).read())
    assert rows[0].line == 2 and rows[0].error is not None
    assert "field larger than field limit (40)" in rows[0].error
    assert summary(rows[1:]) == [(i, str(i)) for i in range(3, 20)]


@pytest.mark.usefixtures("small_field_limit")
def test_csv_row_too_long_to_read_again_is_reported_whole(tmp_path: Path) -> None:
    # A legitimately quoted row longer than the replay buffer, broken at its end: reported with
    # its line span instead of buffering without bound.
    a, b, c = ("x" * 15 + "\n" + "x" * 15 for _ in range(3))
    rows = list(csv_source(tmp_path, f'a,b,c,d\n"{a}","{b}","{c}","d"x\n1,2,3,4\n').read())
    assert summary(rows) == [(2, "ERR"), (6, "1")]
    assert rows[0].error is not None and "lines 2-5 were read as one row, too long to read again" in rows[0].error


def test_csv_undecodable_hint_can_be_replaced(tmp_path: Path) -> None:
    source = csv_source(tmp_path, b"a\ncaf\xe9\n")
    source.encoding_hint = "run again with --encoding"
    [row] = source.read()
    assert row.error == (
        "undecodable byte 0xe9 for encoding utf-8; run again with --encoding (e.g. latin-1, cp1252) or fix the file"
    )


def test_jsonl_oversized_number_and_deep_nesting_are_error_rows(tmp_path: Path) -> None:
    content = "\n".join([
        '{"n": ' + "9" * 5000 + "}",
        "[" * 100_000 + "]" * 100_000,
        '{"a": ' * 5000 + "1" + "}" * 5000,
        '{"ok": 1}',
    ])
    rows = list(jsonl_source(tmp_path, content).read())
    assert rows[0] == SourceRow(1, error="a number has more than 4300 digits; write it as a string")
    assert rows[1] == SourceRow(2, error="JSON nested too deeply to read; flatten the record")
    assert rows[2] == SourceRow(3, error="JSON nested too deeply to read; flatten the record")
    assert rows[3] == SourceRow(4, {"ok": 1})
    json.dumps([r.error for r in rows])  # the reasons themselves are storable


@pytest.mark.parametrize(
    ("content", "match"),
    [
        pytest.param("a,a\n1,2\n", r"duplicate column names \['a'\]", id="duplicate-columns"),
        pytest.param(b"\xffa,b\n1,2\n", "undecodable byte 0xff", id="undecodable-header"),
    ],
)
def test_csv_bad_header_raises(tmp_path: Path, content: str | bytes, match: str) -> None:
    with pytest.raises(ConnectorError, match=match):
        list(csv_source(tmp_path, content).read())


JSONL_CASES = [
    pytest.param('{"a": 1}\n{"a": 2}\n', [SourceRow(1, {"a": 1}), SourceRow(2, {"a": 2})], id="plain"),
    pytest.param('{"a": 1}', [SourceRow(1, {"a": 1})], id="no-trailing-newline"),
    pytest.param(
        '\ufeff{"a": 1}\r\n\n  \n{"a": 2}\r\n',
        [SourceRow(1, {"a": 1}), SourceRow(4, {"a": 2})],
        id="bom-crlf-blank",
    ),
    pytest.param('{"t": "a\\u2028b"}\n', [SourceRow(1, {"t": "a\u2028b"})], id="unicode-separator-in-string"),
    pytest.param(
        '{"a": 1\n', [SourceRow(1, error="invalid JSON at column 8: Expecting ',' delimiter")], id="truncated"
    ),
    pytest.param("[1, 2]\n", [SourceRow(1, error="expected a JSON object, got an array")], id="array"),
    pytest.param('"text"\n', [SourceRow(1, error="expected a JSON object, got a string")], id="string"),
    pytest.param("null\n", [SourceRow(1, error="expected a JSON object, got null")], id="null"),
    pytest.param("42\n", [SourceRow(1, error="expected a JSON object, got a number")], id="number"),
    pytest.param(
        b'{"a": "caf\xe9"}\n{"a": 2}\n',
        [
            SourceRow(
                1,
                error="undecodable byte 0xe9 for encoding utf-8; set `encoding:` in connectors/notes.yaml "
                "(e.g. latin-1, cp1252) or fix the file",
            ),
            SourceRow(2, {"a": 2}),
        ],
        id="undecodable-then-good",
    ),
]


@pytest.mark.parametrize(("content", "expected"), JSONL_CASES)
def test_jsonl_rows(tmp_path: Path, content: str | bytes, expected: list[SourceRow]) -> None:
    assert list(jsonl_source(tmp_path, content).read()) == expected


@pytest.mark.parametrize("make", [csv_source, jsonl_source])
def test_missing_file_names_path_and_connector(tmp_path: Path, make: Any) -> None:
    source = make(tmp_path, "")
    source.config.path = "data/missing.txt"
    with pytest.raises(ConnectorError) as info:
        list(source.read())
    message = str(info.value)
    assert str(tmp_path / "data" / "missing.txt") in message
    assert f"'{source.name}'" in message
    assert f"connectors/{source.name}.yaml" in message


def test_absolute_path_is_used_as_is(tmp_path: Path) -> None:
    target = tmp_path / "abs.jsonl"
    target.write_text('{"x": 1}\n')
    source = JsonlSource(
        "abs", JsonlSource.Config(kind="jsonl", path=str(target)), base_dir=tmp_path / "elsewhere"
    )
    assert [r.data for r in source.read()] == [{"x": 1}]


def test_read_is_lazy(tmp_path: Path) -> None:
    source = jsonl_source(tmp_path, '{"a": 1}\n' * 1000)
    rows = source.read()
    assert next(rows) == SourceRow(1, {"a": 1})
    rows.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("cls", "cfg", "match"),
    [
        (CsvSource, {"kind": "csv", "path": "x", "delimiter": ";;"}, "delimiter"),
        (CsvSource, {"kind": "csv", "path": "x", "encoding": "utf-99"}, "unknown encoding 'utf-99'"),
        (CsvSource, {"kind": "csv", "path": "x", "sep": ";"}, "Extra inputs are not permitted"),
        (CsvSource, {"kind": "csv"}, "path"),
        (JsonlSource, {"kind": "csv", "path": "x"}, "kind"),
        (JsonlSource, {"kind": "jsonl", "path": "x", "encoding": "nope"}, "unknown encoding"),
    ],
)
def test_bad_config(cls: Any, cfg: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        cls.Config(**cfg)


def test_config_schema_has_descriptions() -> None:
    for cls in (CsvSource, JsonlSource):
        props = cls.Config.model_json_schema()["properties"]
        assert all(p.get("description") for p in props.values()), props
