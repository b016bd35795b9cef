"""File sources: ``csv`` and ``jsonl``.

Both stream the file row by row. A row that cannot be parsed becomes a ``SourceRow`` with an
``error`` instead of an exception, so the run quarantines it and the counts still add up.
Record ids are not assigned here; the core does that.

A CSV quote that is never closed makes the parser read the following lines as one field, up to the
next quote or the end of the file. When such a row fails (end of data inside the quote, a field
over ``csv.field_size_limit()``, text after the closing quote, or the wrong number of fields), its
first line is reported and the lines after it are parsed again, so one stray quote costs one row,
not the rest of the file. A runaway quote that happens to end in a well-formed row with the right
number of fields cannot be told from a quoted field spanning lines: it is kept as one record, and
the lines it swallowed stay inside that record's field.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
import sys
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, Literal

from pydantic import AfterValidator, Field

from matcha.connectors.base import CONNECTORS, Connector, ConnectorConfig, Source, SourceRow
from matcha.errors import ConnectorError

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


def check_encoding(value: str) -> str:
    """``value`` if Python knows the encoding, else ValueError saying which to use."""
    try:
        codecs.lookup(value)
    except LookupError:
        raise ValueError(f"unknown encoding '{value}'; use e.g. utf-8, utf-8-sig, latin-1, cp1252") from None
    return value


Encoding = Annotated[str, AfterValidator(check_encoding)]


class TextFileSource(Source):
    """A source that reads one text file in a configured encoding."""

    # How to change the encoding, quoted when a byte cannot be decoded. The runner replaces it for a
    # `--input` file, which has no connection file to edit.
    encoding_hint: str | None = None

    def _undecodable(self, text: str) -> str | None:
        m = _ESCAPED_BYTE.search(text)
        if m is None:
            return None
        byte = ord(m.group()) - 0xDC00
        fix = self.encoding_hint or f"set `encoding:` in connectors/{self.name}.yaml"
        return (f"undecodable byte 0x{byte:02x} for encoding {self.config.encoding}; "
                f"{fix} (e.g. latin-1, cp1252) or fix the file")


class _Lines:
    """Feeds csv.reader one line at a time, numbered, keeping the lines after the first of the row
    being parsed, so that they can be parsed again when the row turns out to be a runaway quote."""

    def __init__(self, fh: IO[str]) -> None:
        self._fh = iter(fh)
        self._count = 0
        self._again: deque[tuple[int, str]] = deque()
        self.kept: list[tuple[int, str]] = []
        self.first = self.last = 0  # lines of the row being parsed; first is 0 until one is read
        self.overflow = False  # the row outgrew the replay buffer: it can only be reported whole
        self._size = 0
        # A runaway quote fails within field_size_limit characters after its first line, so that
        # much (plus the line it fails on) is all a replay needs; longer rows are not buffered.
        self._limit = csv.field_size_limit()

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self._again:
            number, line = self._again.popleft()
        else:
            line = next(self._fh)  # StopIteration ends the reader
            self._count += 1
            number = self._count
        self.last = number
        if not self.first:
            self.first = number
        elif self._size <= self._limit and not self.overflow:
            self._size += len(line)
            self.kept.append((number, line))
        else:
            self.overflow = True
            self.kept = []
        return line

    def new_row(self) -> None:
        self.first = 0
        if self.kept:
            self.kept = []
        self._size = 0
        self.overflow = False

    def replay_after_first(self) -> None:
        self._again.extendleft(reversed(self.kept))


@CONNECTORS.register("csv")
class CsvSource(TextFileSource):
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
            lines = _Lines(fh)
            reader = csv.reader(lines, delimiter=self.config.delimiter, strict=True)
            header = self._header(reader, path)
            if header is None:
                return
            yield from self._rows(reader, lines, header)

    def _header(self, reader: Iterator[list[str]], path: Path) -> list[str] | None:
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise ConnectorError(f"Source '{self.name}': cannot read the header of {path}: {exc}") from exc
        if header is None:
            return None  # an empty file is an empty source
        if header:
            header[0] = header[0].removeprefix(_BOM)
        bad = self._undecodable(",".join(header))
        dupes = sorted({h for h in header if header.count(h) > 1})
        if bad or dupes:
            why = bad or f"duplicate column names {dupes}; rename them so every column has its own name"
            raise ConnectorError(f"Source '{self.name}': bad header in {path}: {why}")
        return header

    def _rows(self, reader: Iterator[list[str]], lines: _Lines, header: list[str]) -> Iterator[SourceRow]:
        while True:
            lines.new_row()
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                if not lines.first:
                    return  # nothing consumed: do not loop forever on the same error
                yield self._broken(lines, f"CSV syntax error: {exc}")
                continue
            if not row:
                continue  # blank line
            # rows may span several lines (quoted newlines); report where they start
            bad = self._undecodable(self.config.delimiter.join(row))
            if bad:
                yield SourceRow(lines.first, error=bad)
            elif len(row) != len(header):
                yield self._broken(lines, f"expected {len(header)} fields ({', '.join(header)}), got {len(row)}")
            else:
                yield SourceRow(lines.first, data=dict(zip(header, row, strict=True)))

    @staticmethod
    def _broken(lines: _Lines, reason: str) -> SourceRow:
        """The error row for a row that failed; if it spanned lines, they are queued to be read again."""
        first, last = lines.first, lines.last
        if first == last:
            return SourceRow(first, error=reason)
        if lines.overflow:
            return SourceRow(first, error=f"{reason} (lines {first}-{last} were read as one row, too long to "
                                          f"read again; check for a quote that is not closed on line {first})")
        lines.replay_after_first()
        return SourceRow(first, error=f"{reason}; lines {first}-{last} were read as one row, probably because a "
                                      f"quote on line {first} is not closed: only line {first} is set aside and "
                                      "the lines after it are read again")


@CONNECTORS.register("jsonl")
class JsonlSource(TextFileSource):
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
        bad = self._undecodable(line)
        if bad:
            return SourceRow(number, error=bad)
        try:
            data = json.loads(line.rstrip("\r\n"))
        except json.JSONDecodeError as exc:
            return SourceRow(number, error=f"invalid JSON at column {exc.colno}: {exc.msg}")
        except ValueError as exc:  # e.g. an integer longer than Python converts
            if "integer string conversion" in str(exc):
                limit = sys.get_int_max_str_digits()
                return SourceRow(number, error=f"a number has more than {limit} digits; write it as a string")
            return SourceRow(number, error=f"invalid JSON: {exc}")
        except RecursionError:
            return SourceRow(number, error="JSON nested too deeply to read; flatten the record")
        if not isinstance(data, dict):
            return SourceRow(number, error=f"expected a JSON object, got {_json_type(data)}")
        return SourceRow(number, data=data)


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
