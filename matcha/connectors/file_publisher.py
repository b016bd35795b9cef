"""File publisher (kind ``file``): appends approved items to a jsonl, csv or markdown file.

Every item carries its idempotency key in the file (jsonl ``key`` field, csv ``key`` column,
markdown ``<!-- matcha-key: KEY -->`` under the heading), so after a crash between writing and
the run's ledger update, :meth:`FilePublisher.already_published` finds what was written and a
resume never duplicates it.

A reader never sees a partial record once the run has resumed. A SIGKILL can cut an append short
(a large write() returns early on a fatal signal), so each batch is committed like this:

1. take an exclusive ``flock`` on the output file (two runs may publish to the same file);
2. repair: bytes beyond the committed size, and within the end announced for the last append,
   belong to a batch that was cut short, so they are truncated away;
3. announce the append (committed size and the end it will reach), append the batch, fsync;
4. record the new committed size in a sidecar next to the output, ``.<name>.matcha-state``
   (JSON, written to a temporary file, fsynced, then renamed over the old one).

The items of a batch cut short are still marked ``sending`` in the run's ledger. On resume the
publish step asks :meth:`FilePublisher.already_published` first, which repairs the file the same
way before scanning it, so those items are not found there and are sent again, exactly once.
A crash after the fsync but before the sidecar update is handled the same way: the batch is
truncated and sent again. A file without a sidecar (written by an older Matcha), or one that is
not the file the sidecar describes (replaced, shorter than recorded, or longer than our last
append could have made it, e.g. a line another tool appended), is taken as fully committed: bytes
are only removed when they are known to be an unfinished append of ours.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
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
from matcha.runtime.faults import crash_point

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
            with _locked(path, create=True) as fd:
                size = _repair(fd, path)
                data = self._render(items, fd, size).encode("utf-8")
                # Announce the append first: repair may then cut only what this append could have left.
                _save_state(path, fd, size, end=size + len(data))
                # Two writes with a crash point between them: the fault tests kill the process there
                # to prove that a torn append is repaired. The data is on disk before it is committed.
                half = len(data) // 2
                _write_all(fd, data[:half])
                crash_point("file_publisher.mid_write")
                _write_all(fd, data[half:])
                os.fsync(fd)
                _save_state(path, fd, size + len(data))
        except OSError as exc:
            raise ConnectorError(
                f"Publisher '{self.name}': cannot write {path}: {exc.strerror or exc}. "
                f"Check `path` in connectors/{self.name}.yaml and that the directory is writable"
            ) from exc

    def already_published(self, items: list[PublishItem]) -> set[str]:
        wanted = {item.key for item in items}
        path = self.path
        if not wanted or not path.exists():
            return set()
        try:
            with _locked(path, create=False) as fd:
                _repair(fd, path)  # a batch cut short must not count as published
                return wanted & set(self._scan_keys())
        except FileNotFoundError:
            return set()  # removed since the check above
        except OSError as exc:
            raise ConnectorError(
                f"Publisher '{self.name}': cannot read or repair {path}: {exc.strerror or exc}. "
                f"Check that the file and its directory are writable"
            ) from exc

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

    def _render(self, items: list[PublishItem], fd: int, size: int) -> str:
        # A file from an older version may end in a line cut short by a crash; start on a fresh line.
        prefix = "\n" if size and os.pread(fd, 1, size - 1) != b"\n" else ""
        fmt = self.config.format
        if fmt == "jsonl":
            body = "".join(json.dumps(self._row(i), ensure_ascii=False, default=str) + "\n" for i in items)
        elif fmt == "csv":
            body = self._render_csv(items, self.path, write_header=size == 0)
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


def state_path(path: Path) -> Path:
    """The sidecar holding how many bytes of ``path`` are committed."""
    return path.with_name(f".{path.name}.matcha-state")


@contextlib.contextmanager
def _locked(path: Path, *, create: bool) -> Iterator[int]:
    flags = os.O_RDWR | os.O_APPEND | (os.O_CREAT if create else 0)
    fd = os.open(path, flags, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd is closed, also when the process dies
        yield fd
    finally:
        os.close(fd)


def _repair(fd: int, path: Path) -> int:
    """Truncate an append that was cut short; returns the committed size. Call with the lock held."""
    st = os.fstat(fd)
    state = _load_state(path)
    same_file = state is not None and (state.get("dev"), state.get("ino")) == (st.st_dev, st.st_ino)
    committed = state.get("size") if state is not None and same_file else None
    end = state.get("end", committed) if state is not None else None
    if not isinstance(committed, int) or not isinstance(end, int) or not committed <= st.st_size <= end:
        # No sidecar, another file, a file someone shortened, or bytes beyond what our announced
        # append could have written (another tool appended, or another path to the same file):
        # all of it counts as committed. Only our own unfinished append is ever cut.
        _save_state(path, fd, st.st_size)
        return st.st_size
    if st.st_size > committed:
        os.ftruncate(fd, committed)
        os.fsync(fd)
    return committed


def _load_state(path: Path) -> dict[str, Any] | None:
    try:
        state = json.loads(state_path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # unreadable: never cut bytes on its word; it is rewritten at the next append
    return state if isinstance(state, dict) else None


def _save_state(path: Path, fd: int, size: int, end: int | None = None) -> None:
    """Record ``size`` bytes as committed; ``end``: an append in progress may reach that size."""
    st = os.fstat(fd)
    state = state_path(path)
    tmp = state.with_name(state.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump({"size": size, "end": size if end is None else end, "dev": st.st_dev, "ino": st.st_ino}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, state)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename (and a newly created output file) survive a power cut
    finally:
        os.close(dir_fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]  # write() may write less than asked
