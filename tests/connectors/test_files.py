from __future__ import annotations

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
            SourceRow(1, error="undecodable byte 0xe9 for encoding utf-8; set `encoding` or fix the file"),
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
