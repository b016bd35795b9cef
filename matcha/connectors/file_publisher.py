"""File publisher (kind ``file``): appends approved items to a jsonl, csv or markdown file.

Every item carries its idempotency key in the file (jsonl ``key`` field, csv ``key`` column,
markdown ``<!-- matcha-key: KEY -->`` under the heading), so after a crash between writing and
the run's ledger update, :meth:`FilePublisher.already_published` finds what was written and a
resume never duplicates it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from matcha.connectors.base import CONNECTORS, ConnectorConfig, Publisher, PublishItem
from matcha.connectors.files import resolve_path
from matcha.errors import ConnectorError

BASE_COLUMNS = ("id", "text", "sha256", "run_id", "key")
_MD_KEY = re.compile(r"<!-- matcha-key: ([0-9a-f]+) -->")


@CONNECTORS.register("file")
class FilePublisher(Publisher):
    """Appends each approved item to a local file and fsyncs it."""

    class Config(ConnectorConfig):
        kind: Literal["file"] = Field(description="Connector kind: append approved items to a local file.")
        path: str = Field(description="Output file; relative paths start at the project directory.")
        format: Literal["jsonl", "csv", "markdown"] = Field(
            "jsonl",
            description="jsonl: one JSON object per item; csv: one row per item; markdown: one section.",
        )
        fields: list[str] | None = Field(
            None, description="Record fields to include besides id, text, sha256, run_id and key."
        )

        @field_validator("fields")
        @classmethod
        def _not_reserved(cls, value: list[str] | None) -> list[str] | None:
            clash = sorted(set(value or ()) & set(BASE_COLUMNS))
            if clash:
                raise ValueError(f"{clash} are always written; remove them from `fields`")
            if value and len(set(value)) != len(value):
                raise ValueError("each field may be listed only once")
            return value

    config: Config

    @property
    def path(self) -> Path:
        return resolve_path(self, self.config.path)

    @property
    def columns(self) -> list[str]:
        return [*BASE_COLUMNS, *(self.config.fields or ())]

    def publish(self, items: list[PublishItem]) -> None:
        if not items:
            return
        path = self.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            text = self._render(items, path)
            # One write per batch, then fsync: the data is on disk before the caller records it.
            with path.open("a", encoding="utf-8", newline="") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise ConnectorError(
                f"Publisher '{self.name}': cannot write {path}: {exc.strerror or exc}. "
                f"Check `path` in connectors/{self.name}.yaml and that the directory is writable"
            ) from exc

    def already_published(self, items: list[PublishItem]) -> set[str]:
        wanted = {item.key for item in items}
        if not wanted or not self.path.exists():
            return set()
        return wanted & set(self._scan_keys())

    def _row(self, item: PublishItem) -> dict[str, Any]:
        row: dict[str, Any] = {
            "id": item.record_id,
            "text": item.text,
            "sha256": item.sha256,
            "run_id": item.run_id,
            "key": item.key,
        }
        for name in self.config.fields or ():
            row[name] = item.record.get(name)
        return row

    def _render(self, items: list[PublishItem], path: Path) -> str:
        size = path.stat().st_size if path.exists() else 0
        # A crash mid-write can leave a last line without its newline; start on a fresh line.
        prefix = "\n" if size and not _ends_with_newline(path) else ""
        fmt = self.config.format
        if fmt == "jsonl":
            body = "".join(json.dumps(self._row(i), ensure_ascii=False, default=str) + "\n" for i in items)
        elif fmt == "csv":
            body = self._render_csv(items, path, write_header=size == 0)
        else:
            body = "".join(self._render_markdown(i) for i in items)
        return prefix + body

    def _render_csv(self, items: list[PublishItem], path: Path, *, write_header: bool) -> str:
        if not write_header:
            self._check_csv_header(path)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        if write_header:
            writer.writerow(self.columns)
        for item in items:
            writer.writerow([_cell(v) for v in self._row(item).values()])
        return buf.getvalue()

    def _check_csv_header(self, path: Path) -> None:
        with path.open(encoding="utf-8", newline="") as fh:
            header = next(csv.reader(fh), [])
        if header != self.columns:
            raise ConnectorError(
                f"Publisher '{self.name}': {path} has columns {header}, but this connector writes "
                f"{self.columns}. Use a new `path` in connectors/{self.name}.yaml or restore `fields`"
            )

    def _render_markdown(self, item: PublishItem) -> str:
        title = " ".join(item.record_id.split())  # a heading must stay on one line
        lines = [f"## {title}", f"<!-- matcha-key: {item.key} -->", ""]
        for name in self.config.fields or ():
            lines.append(f"- **{name}**: {_cell(item.record.get(name))}")
        if self.config.fields:
            lines.append("")
        lines += [item.text.rstrip("\n"), "", ""]
        return "\n".join(lines)

    def _scan_keys(self) -> Iterator[str]:
        with self.path.open(encoding="utf-8", errors="replace", newline="") as fh:
            if self.config.format == "csv":
                for row in csv.DictReader(fh):
                    if row.get("key"):
                        yield str(row["key"])
            elif self.config.format == "jsonl":
                for line in fh:
                    key = _jsonl_key(line)
                    if key:
                        yield key
            else:
                previous = ""
                for line in fh:
                    m = _MD_KEY.fullmatch(line.rstrip("\r\n"))
                    # Only the line right under a heading counts, so quoted text cannot fake a key.
                    if m and previous.startswith("## "):
                        yield m.group(1)
                    previous = line


def _jsonl_key(line: str) -> str | None:
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        return None  # e.g. a line cut short by a crash
    key = data.get("key") if isinstance(data, dict) else None
    return key if isinstance(key, str) else None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"
