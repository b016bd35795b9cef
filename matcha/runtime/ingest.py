"""Reading records into a run: ids assigned, bad rows quarantined, duplicates set aside.

Every source row becomes exactly one row of the source step, so ``in = out + quarantined``.
A quarantined row that has no usable id gets a made-up one (``line-N``, ``line-N-dup``). A made-up
id never takes a real record's id: if the real id came first, the made-up one gets a suffix
(``line-3~2``); if the real record comes later, the quarantined row already written is renamed.
Ingest stays deterministic, so a re-ingest after a crash writes the same rows under the same ids.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Callable, Iterable
from typing import Any

from matcha.connectors.base import SourceRow
from matcha.runtime.store import RunStore
from matcha.spec.graph import SOURCE

Record = dict[str, Any]
Row = tuple[str, int, str, str | None, Record]
CHUNK = 2000  # rows per source part and transaction
# Deeper records are quarantined: json can read about 1000 levels but later steps serialise records
# from deeper in the stack, and no real record needs more than a few levels.
MAX_DEPTH = 64


class _Ids:
    """Real record ids seen so far, and the ids made up for quarantined rows."""

    def __init__(self) -> None:
        self.real: set[str] = set()
        self.made: dict[str, str] = {}  # made-up id -> the id it was made from
        self.suffix: dict[str, int] = {}  # base -> last suffix tried: hostile ids cost O(1) each, not O(n)

    def make(self, base: str) -> str:
        n = self.suffix.get(base, 1)
        rid = base if n == 1 else f"{base}~{n}"
        while rid in self.real or rid in self.made:
            n += 1
            rid = f"{base}~{n}"
        self.suffix[base] = n
        self.made[rid] = base
        return rid

    def claim(self, rid: str) -> str | None:
        """Take ``rid`` for a real record; returns the new id of the quarantined row that had it."""
        self.real.add(rid)
        base = self.made.pop(rid, None)
        return None if base is None else self.make(base)


class _Writer:
    """Buffers rows and writes them in chunks; renames quarantined rows whether written or not."""

    def __init__(self, store: RunStore, run_id: str, written: Callable[[list[Row] | None], None] | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self.written = written
        self.buf: list[Row] = []
        self.lines: list[int] = []
        self.buffered: dict[str, int] = {}  # made-up id -> index in buf

    def add(self, row: Row, line: int, made: bool) -> None:
        if made:
            self.buffered[row[0]] = len(self.buf)
        self.buf.append(row)
        self.lines.append(line)
        if len(self.buf) >= CHUNK:
            self.flush()

    def rename(self, old: str, new: str) -> None:
        i = self.buffered.pop(old, None)
        if i is None:
            self.store.rename_record(self.run_id, SOURCE, old, new)
        else:
            self.buf[i] = (new, *self.buf[i][1:])
            self.buffered[new] = i

    def flush(self) -> None:
        if not self.buf:
            return
        written: list[Row] | None = self.buf
        try:
            self.store.add_items(self.run_id, SOURCE, self.buf)
        except sqlite3.Error:
            raise
        except Exception:
            # Some record cannot be serialised (e.g. an int beyond Python's digit limit, from a
            # library caller): find it and quarantine it instead of failing the run.
            rows = [_storable(row, line) for row, line in zip(self.buf, self.lines, strict=True)]
            self.store.add_items(self.run_id, SOURCE, rows)
            written = None  # not as read: nothing more is handed on
        if self.written is not None:
            self.written(written)
        self.buf, self.lines, self.buffered = [], [], {}


def ingest(store: RunStore, run_id: str, rows: Iterable[SourceRow], id_field: str | None,
           limit: int | None = None, progress: Callable[[int], None] | None = None,
           written: Callable[[list[Row] | None], None] | None = None) -> None:
    """Write source rows as the output of the source node. Idempotent: re-ingesting after a crash
    rewrites the same rows (ids and order are derived from the source). ``written`` is given each
    chunk of ``(record_id, seq, status, reason, record)`` once it is stored (None when what was
    stored differs from what was read)."""
    store.index_ids(run_id)  # a re-ingest rewrites what was written before as rows (nothing on a first ingest)
    ids = _Ids()
    writer = _Writer(store, run_id, written)
    n = 0
    for seq, row in enumerate(rows):
        if limit is not None and seq >= limit:
            break
        entry, made = _row(seq, row, id_field, ids)
        if not made:
            renamed = ids.claim(entry[0])
            if renamed is not None:
                writer.rename(entry[0], renamed)
        writer.add(entry, row.line, made)
        n += 1
        if progress and n % CHUNK == 0:
            progress(n)
    writer.flush()
    if progress:
        progress(n)


def _row(seq: int, row: SourceRow, id_field: str | None, ids: _Ids) -> tuple[Row, bool]:
    """The row to write, and whether its id is made up (quarantined rows)."""
    base = f"line-{row.line}"
    if row.error is not None or row.data is None:
        return (ids.make(base), seq, "quarantined", f"line {row.line}: {row.error}", {}), True
    rec = dict(row.data)
    if not _within_depth(rec, MAX_DEPTH):
        why = f"line {row.line}: nested more than {MAX_DEPTH} levels deep; flatten the record"
        return (ids.make(base), seq, "quarantined", why, {}), True
    if id_field is None:
        rid = f"{row.line}"
    else:
        rid = _id_value(rec.get(id_field))
        if not rid:
            why = f"line {row.line}: no value in id field '{id_field}' (set source.id_field, or null to number rows)"
            return (ids.make(base), seq, "quarantined", why, rec), True
    if "\x00" in rid:  # an id is text a person reads and types; PostgreSQL cannot store a NUL either
        why = f"line {row.line}: the id holds a NUL character (\\x00); remove it from field '{id_field}'"
        return (ids.make(base), seq, "quarantined", why, rec), True
    if rid in ids.real:
        return (ids.make(f"{base}-dup"), seq, "quarantined", f"line {row.line}: duplicate id '{rid}'", rec), True
    rec["id"] = rid
    return (rid, seq, "out", None, rec), False


def _id_value(value: Any) -> str:
    if value is None:
        return ""
    try:
        return str(value).strip()
    except ValueError:  # an int too long to print: not a usable id
        return ""


_CONTAINERS = frozenset({dict, list, tuple})


def _within_depth(value: Any, room: int) -> bool:
    if type(value) is dict and _CONTAINERS.isdisjoint(map(type, value.values())):
        return room >= 1  # a flat record (the usual case), checked in C
    if isinstance(value, dict):
        children: Iterable[Any] = value.values()
    elif isinstance(value, list | tuple):
        children = value
    else:
        return True
    if room == 0:
        return False
    return all(_within_depth(v, room - 1) for v in children if isinstance(v, dict | list | tuple))


def _storable(row: Row, line: int) -> Row:
    rid, seq, _status, _reason, data = row
    try:
        json.dumps(data, ensure_ascii=False, default=str)
    except Exception as exc:
        why = f"{type(exc).__name__}: {exc}"
        if "integer string conversion" in why:
            why = f"a number has more than {sys.get_int_max_str_digits()} digits; pass it as a string"
        return rid, seq, "quarantined", f"line {line}: cannot be stored: {why}", {}
    return row


def records_as_rows(records: Iterable[Record]) -> Iterable[SourceRow]:
    for i, rec in enumerate(records, start=1):
        if isinstance(rec, dict):
            yield SourceRow(line=i, data=rec)
        else:
            yield SourceRow(line=i, error=f"not a mapping: {type(rec).__name__}")
