"""File sources: ``csv`` and ``jsonl``.

Both stream the file row by row. A row that cannot be parsed becomes a ``SourceRow`` with an
``error`` instead of an exception, so the run quarantines it and the counts still add up.
Record ids are not assigned here; the core does that.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, Field

from matcha.connectors.base import CONNECTORS, Connector, ConnectorConfig, Source, SourceRow
from matcha.errors import ConnectorError

if TYPE_CHECKING:
    import _csv

# Undecodable bytes are read as lone surrogates (errors="surrogateescape") so one bad row does
# not abort the whole file; a row containing one is reported instead of being passed on.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
_BOM = "\ufeff"


def resolve_path(connector: Connector, path: str) -> Path:
    """``path`` made absolute: ``~`` expanded, relative paths taken from the project directory."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else connector.base_dir / p


def open_text(connector: Connector, path: Path, encoding: str) -> IO[str]:
    """Open ``path`` for reading, turning OS errors into a ConnectorError that says how to fix it."""
    where = f"connectors/{connector.name}.yaml"
    try:
        return path.open(encoding=encoding, errors="surrogateescape", newline="")
    except FileNotFoundError as exc:
        raise ConnectorError(
            f"Source '{connector.name}': file not found: {path}. Fix `path` in {where} "
            f"(relative paths are resolved against {connector.base_dir})"
        ) from exc
    except OSError as exc:
        raise ConnectorError(
            f"Source '{connector.name}': cannot open {path}: {exc.strerror or exc}. Check `path` in {where}"
        ) from exc


def _check_encoding(value: str) -> str:
    try:
        codecs.lookup(value)
    except LookupError:
        raise ValueError(f"unknown encoding '{value}'; use e.g. utf-8, utf-8-sig, latin-1, cp1252") from None
    return value


Encoding = Annotated[str, AfterValidator(_check_encoding)]


def _undecodable(text: str, encoding: str) -> str | None:
    m = _ESCAPED_BYTE.search(text)
    if m is None:
        return None
    byte = ord(m.group()) - 0xDC00
    return f"undecodable byte 0x{byte:02x} for encoding {encoding}; set `encoding` or fix the file"


@CONNECTORS.register("csv")
class CsvSource(Source):
    """Reads a CSV file with a header row; each following row becomes a record keyed by the header."""

    class Config(ConnectorConfig):
        kind: Literal["csv"] = Field(description="Connector kind: a CSV file with a header row.")
        path: str = Field(description="Path of the CSV file; relative paths start at the project directory.")
        delimiter: str = Field(
            ",", min_length=1, max_length=1, description="Field separator: one character, e.g. ',' ';' '\\t'."
        )
        encoding: Encoding = Field(
            default="utf-8", description="Text encoding of the file, e.g. utf-8, latin-1."
        )

    config: Config

    def read(self) -> Iterator[SourceRow]:
        path = resolve_path(self, self.config.path)
        with open_text(self, path, self.config.encoding) as fh:
            reader = csv.reader(fh, delimiter=self.config.delimiter, strict=True)
            header = self._header(reader, path)
            if header is None:
                return
            yield from self._rows(reader, header)

    def _header(self, reader: Iterator[list[str]], path: Path) -> list[str] | None:
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise ConnectorError(f"Source '{self.name}': cannot read the header of {path}: {exc}") from exc
        if header is None:
            return None  # an empty file is an empty source
        if header:
            header[0] = header[0].removeprefix(_BOM)
        bad = _undecodable(",".join(header), self.config.encoding)
        dupes = sorted({h for h in header if header.count(h) > 1})
        if bad or dupes:
            why = bad or f"duplicate column names {dupes}; rename them so every column has its own name"
            raise ConnectorError(f"Source '{self.name}': bad header in {path}: {why}")
        return header

    def _rows(self, reader: _csv.Reader, header: list[str]) -> Iterator[SourceRow]:
        last = reader.line_num
        while True:
            start = last + 1  # rows may span several lines (quoted newlines); report where they start
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                if reader.line_num == last:
                    return  # nothing consumed: do not loop forever on the same error
                last = reader.line_num
                yield SourceRow(start, error=f"CSV syntax error: {exc}")
                continue
            last = reader.line_num
            if not row:
                continue  # blank line
            bad = _undecodable(self.config.delimiter.join(row), self.config.encoding)
            if bad:
                yield SourceRow(start, error=bad)
            elif len(row) != len(header):
                yield SourceRow(
                    start, error=f"expected {len(header)} fields ({', '.join(header)}), got {len(row)}"
                )
            else:
                yield SourceRow(start, data=dict(zip(header, row, strict=True)))


@CONNECTORS.register("jsonl")
class JsonlSource(Source):
    """Reads a JSON Lines file: one JSON object per line; blank lines are skipped."""

    class Config(ConnectorConfig):
        kind: Literal["jsonl"] = Field(description="Connector kind: a JSON Lines file, one object per line.")
        path: str = Field(description="Path of the .jsonl file; relative paths start at the project dir.")
        encoding: Encoding = Field(default="utf-8", description="Text encoding of the file, e.g. utf-8.")

    config: Config

    def read(self) -> Iterator[SourceRow]:
        path = resolve_path(self, self.config.path)
        with open_text(self, path, self.config.encoding) as fh:
            for number, line in enumerate(fh, start=1):
                if number == 1:
                    line = line.removeprefix(_BOM)
                if not line.strip():
                    continue
                yield self._parse(number, line)

    def _parse(self, number: int, line: str) -> SourceRow:
        bad = _undecodable(line, self.config.encoding)
        if bad:
            return SourceRow(number, error=bad)
        try:
            data = json.loads(line.rstrip("\r\n"))
        except json.JSONDecodeError as exc:
            return SourceRow(number, error=f"invalid JSON at column {exc.colno}: {exc.msg}")
        if not isinstance(data, dict):
            return SourceRow(number, error=f"expected a JSON object, got {_json_type(data)}")
        return SourceRow(number, data=data)


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
