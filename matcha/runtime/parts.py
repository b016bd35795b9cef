"""How the run store keeps what a step wrote: one *part* per step and batch, not one row per record.

A part holds, for the records of one written batch (sorted by seq): their seqs (an int64 array, or
nothing when they run from ``lo`` to ``hi`` without a gap),
their statuses (one byte each, absent when all passed on), the fields each record changed (one JSON
list, a ``{}`` for a record that changed nothing) and the rare extras (reasons, removed fields,
group links) in a small JSON object. One encode and one insert per batch instead of one per record,
and the field names are stored once per part in ``keys``, which lets a reader skip the steps that
never wrote a field it wants.

:class:`PartCursor` walks one step's parts in seq order for a reader whose ranges only move
forward, keeping the parts that overlap the current range (a step that wrote in two passes, like
approval, has parts whose ranges interleave) and decoding a part's data at most once.
"""

from __future__ import annotations

import base64
import sqlite3
from collections import deque
from collections.abc import Sequence
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np

from matcha.runtime import codec
from matcha.secrets import mask, mask_obj

Record = dict[str, Any]
#: What a step writes for one record: ``(seq, status, reason, changed fields, removed fields, link)``;
#: ``link`` is the seq of the record a ``grouped`` record went into.
Row = tuple[int, str, str | None, Record | None, Sequence[str] | None, int | None]

STATUSES = ("out", "dropped", "quarantined", "grouped")
CODE = {s: i for i, s in enumerate(STATUSES)}
OUT = 0

PARTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS parts (
  id INTEGER PRIMARY KEY, run INTEGER, step INTEGER, lo INTEGER, hi INTEGER, n INTEGER, made INTEGER,
  n_out INTEGER, n_dropped INTEGER, n_quarantined INTEGER, n_grouped INTEGER,
  seqs BLOB, codes BLOB, data TEXT, notes TEXT, keys TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS parts_at ON parts (run, step, lo);
CREATE INDEX IF NOT EXISTS parts_end ON parts (run, step, hi);
"""


def encode(run: int, step: int, rows: list[Row], made: bool) -> tuple[Any, ...]:
    """The ``parts`` row for ``rows`` (any order; one per seq)."""
    rows = sorted(rows, key=lambda r: r[0])
    seqs = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    datas = [r[3] or {} for r in rows]
    keys: set[str] = set().union(*datas)
    reasons = [[i, r[2]] for i, r in enumerate(rows) if r[2]]
    links = [[i, r[5]] for i, r in enumerate(rows) if r[5] is not None]
    gone: dict[tuple[str, ...], list[int]] = {}
    for i, r in enumerate(rows):
        if r[4]:
            gone.setdefault(tuple(r[4]), []).append(i)
            keys.update(r[4])
    notes: dict[str, Any] = {}
    if links:
        notes["link"] = links
    if gone:
        notes["gone"] = [[list(k), None if len(v) == len(rows) else v] for k, v in gone.items()]
    return pack(run, step, seqs, bytes(CODE[r[1]] for r in rows), _table(datas), keys, reasons, notes, made)


def encode_items(run: int, step: int, rows: list[tuple[str, int, str, str | None, Record]]) -> tuple[Any, ...]:
    """The part for records brought into a run, ``(record_id, seq, status, reason, data)`` in seq
    order: when all passed and have the same fields in the same order (rows of one source), the
    table is made a column at a time, without a dict per record."""
    datas = [r[4] for r in rows]
    shapes = set(map(tuple, map(dict.keys, datas)))
    if len(shapes) != 1 or any(r[2] != "out" for r in rows):
        return encode(run, step, [(seq, status, reason, {k: v for k, v in data.items() if k != "id"}, None, None)
                                  for _rid, seq, status, reason, data in rows], made=False)
    keys = [k for k in shapes.pop() if k != "id"]
    seqs = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
    data: list[Record] | dict[str, Any] = \
        {"keys": keys, "cols": [list(map(itemgetter(k), datas)) for k in keys]} if keys else [{} for _ in rows]
    return pack(run, step, seqs, bytes(len(rows)), data, set(keys), [], {}, False)


def pack(run: int, step: int, seqs: np.ndarray, codes: bytes, data: list[Record] | dict[str, Any],
         keys: set[str], reasons: list[list[Any]], notes: dict[str, Any], made: bool) -> tuple[Any, ...]:
    """The ``parts`` row for the records at ``seqs`` (sorted): one status code each, their changed
    fields (a list of dicts or a table, see :func:`_table`), every field name written or removed,
    ``[[index, reason]]`` and the other notes (``link``, ``gone``)."""
    counts = [codes.count(c) for c in range(len(STATUSES))]
    if reasons:
        masked: dict[str, str] = {}  # reasons repeat (a filter's): mask each distinct one once
        notes = {"reason": [[i, masked.get(why) or masked.setdefault(why, mask(why))] for i, why in reasons],
                 **notes}
    lo, hi = int(seqs[0]), int(seqs[-1])
    return (run, step, lo, hi, len(seqs), int(made), *counts, None if hi - lo + 1 == len(seqs) else seqs.tobytes(),
            None if counts[OUT] == len(seqs) else codes, codec.dumps(_typed(mask_obj(data))),
            codec.dumps(notes) if notes else None, codec.dumps(sorted(keys)))


def _table(datas: list[Record]) -> list[Record] | dict[str, Any]:
    """Records that all have the same fields in the same order as a table (field names once, one
    list of values per field): smaller, decoded a column at a time and merged on reading without a
    dict per record."""
    first = tuple(datas[0])
    if len(datas) < 2 or not first or any(tuple(d) != first for d in datas):
        return datas
    return {"keys": list(first), "cols": list(map(list, zip(*map(dict.values, datas), strict=True)))}


# A column of only floats, ints (64-bit) or booleans is stored as its machine values: "<type>:" and
# base64 (exact, NaN included; a tenth of the time of writing and reading the numbers as text).
_TYPED: dict[type, str] = {float: "f8", bool: "b1"}
_INTS = [("i1", 2**7), ("i2", 2**15), ("i4", 2**31), ("i8", 2**63)]


def _typed(data: Any) -> Any:
    if not isinstance(data, dict) or "cols" not in data:
        return data
    return {**data, "cols": [_typed_column(col) for col in data["cols"]]}


def _typed_column(col: list[Any]) -> list[Any] | str:
    if len(col) < 8:
        return col
    kinds = set(map(type, col))
    if len(kinds) != 1:
        return col
    kind = kinds.pop()
    code = _TYPED.get(kind)
    if kind is int:
        low, high = min(col), max(col)
        code = next((c for c, bound in _INTS if -bound <= low and high < bound), None)
    if code is None:
        return col
    return f"{code}:" + base64.b64encode(np.asarray(col, dtype=np.dtype(code)).tobytes()).decode("ascii")


def _untyped(col: list[Any] | str) -> list[Any]:
    if isinstance(col, list):
        return col
    code, _, text = col.partition(":")
    return np.frombuffer(base64.b64decode(text), dtype=np.dtype(code)).tolist()  # type: ignore[no-any-return]


def link_notes(to: np.ndarray) -> dict[str, Any]:
    """The notes linking the rows of a part to the records they were grouped into (``to``: a seq
    per row, -1 for none): one typed column, not a pair per row."""
    if not (to >= 0).any():
        return {}
    return {"link_to": _typed_column(to.tolist())}


def columns_of(table: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """``(keys, one list of values per key)`` of a stored table: ``cols`` (typed columns decoded),
    or ``rows`` as stores written before columns kept them."""
    keys = table["keys"]
    if "cols" in table:
        return keys, [_untyped(col) for col in table["cols"]]
    rows = table["rows"]
    return keys, [list(map(itemgetter(i), rows)) for i in range(len(keys))] if rows else [[] for _ in keys]


INSERT = "INSERT OR REPLACE INTO parts (run, step, lo, hi, n, made, n_out, n_dropped, n_quarantined, n_grouped, " \
         "seqs, codes, data, notes, keys) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"


class Part:
    """One part's seqs and statuses; its data and notes are read on first use."""

    __slots__ = ("_data", "_notes", "_table", "codes", "db", "flat", "hi", "id", "lo", "seqs")

    def __init__(self, db: sqlite3.Connection, pid: int, lo: int, hi: int, seqs: bytes | None, codes: bytes | None):
        self.db = db
        self.id, self.lo, self.hi = pid, lo, hi
        # no seqs stored: every seq from lo to hi (the usual case)
        self.seqs = np.arange(lo, hi + 1, dtype=np.int64) if seqs is None else np.frombuffer(seqs, dtype=np.int64)
        self.codes = None if codes is None else np.frombuffer(codes, dtype=np.uint8)
        self._data: list[Record] | None = None
        self._table: tuple[list[str], list[list[Any]]] | None = None
        self._notes: dict[str, Any] | None = None
        #: no value this part holds is a list or an object (known once its data is read)
        self.flat = True

    def _load(self) -> None:
        # as bytes: what the decoder reads, without making a str of it first
        data, notes = self.db.execute("SELECT CAST(data AS BLOB), notes FROM parts WHERE id=?", (self.id,)).fetchone()
        loaded = codec.loads(data)
        if isinstance(loaded, dict):
            self._table = columns_of(loaded)
            # no list or object inside a value: the text has only the table's own brackets (a
            # bracket inside a string makes this say "maybe nested", which is only slower)
            lists = sum(isinstance(c, list) for c in loaded["cols"]) if "cols" in loaded else len(loaded["rows"])
            self.flat = data.count(b"{") == 1 and data.count(b"[") == 2 + lists
        else:
            self._data = loaded
            self.flat = data.count(b"{") == len(loaded) and data.count(b"[") == 1
        self._notes = codec.loads(notes) if notes else {}

    @property
    def data(self) -> list[Record]:
        if self._data is None:
            if self._notes is None:
                self._load()
            if self._table is not None:
                keys, cols = self._table
                self._data = [dict(zip(keys, row, strict=True)) for row in zip(*cols, strict=True)] if keys else \
                    [{} for _ in self.seqs]
        assert self._data is not None
        return self._data

    @property
    def notes(self) -> dict[str, Any]:
        if self._notes is None:
            self._load()
        assert self._notes is not None
        return self._notes

    @classmethod
    def spanning(cls, db: sqlite3.Connection, run: int, step: int, lo: int, hi: int) -> list[Part]:
        """The parts of a step holding any seq in ``[lo, hi]``."""
        rows = db.execute("SELECT id, lo, hi, seqs, codes FROM parts WHERE run=? AND step=? AND hi>=? AND lo<=?",
                          (run, step, lo, hi)).fetchall()
        return [cls(db, *r) for r in rows]

    def code_array(self) -> np.ndarray:
        return np.zeros(len(self.seqs), dtype=np.uint8) if self.codes is None else self.codes

    def select(self, lo: int, hi: int, code: int | None) -> np.ndarray:
        """Seqs in ``[lo, hi]`` with status ``code`` (any status with None)."""
        a, b = np.searchsorted(self.seqs, [lo, hi + 1])
        seqs = self.seqs[a:b]
        if code is None or (self.codes is None and code == OUT):
            return seqs
        if self.codes is None:
            return seqs[:0]
        return seqs[self.codes[a:b] == code]

    def positions(self, seqs: np.ndarray) -> np.ndarray:
        """The index in this part of each of ``seqs`` (sorted), -1 where it has none."""
        pos = np.searchsorted(self.seqs, seqs)
        pos[pos >= len(self.seqs)] = len(self.seqs) - 1
        return np.where(self.seqs[pos] == seqs, pos, -1)

    def _hits(self, seqs: np.ndarray, code: int) -> tuple[np.ndarray, list[int]] | None:
        """``(index in seqs, index in this part)`` of the seqs this part holds, passed on or with
        status ``code``; None when it holds none of them."""
        pos = self.positions(seqs)
        if self.codes is not None:
            codes = self.codes[np.maximum(pos, 0)]
            pos = np.where((codes == OUT) | (codes == code), pos, -1)
        hit = np.nonzero(pos >= 0)[0]
        if not len(hit):
            return None
        if self._notes is None:
            self._load()
        return hit, pos[hit].tolist()

    def merge_into(self, recs: list[Record], seqs: np.ndarray, code: int) -> None:
        """Update ``recs`` (one per seq of ``seqs``) with what this part holds for them: the rows
        passed on, or with status ``code``."""
        found = self._hits(seqs, code)
        if found is None:
            return
        hit, at = found
        if self._table is not None and self._data is None:
            keys, cols = self._table
            targets = list(map(recs.__getitem__, hit.tolist()))
            for key, col in zip(keys, cols, strict=True):  # a column at a time, in C
                deque(map(dict.__setitem__, targets, repeat(key), map(col.__getitem__, at)), maxlen=0)
        else:
            data = self.data
            for j, i in zip(hit.tolist(), at, strict=True):
                d = data[i]
                if d:
                    dict.update(recs[j], d)
        if "gone" in self.notes:
            gone = self.gone()
            for j, i in zip(hit.tolist(), at, strict=True):
                for k in gone.get(i, ()):
                    dict.pop(recs[j], k, None)

    def columns_into(self, out: dict[str, list[Any]], seqs: np.ndarray, code: int) -> None:
        """Set, in ``out`` (one list per wanted field, one slot per seq of ``seqs``), the values this
        part holds for those seqs (rows passed on, or with status ``code``); a field it removed
        becomes None."""
        found = self._hits(seqs, code)
        if found is None:
            return
        hit, at = found
        if self._table is not None and self._data is None:
            keys, cols = self._table
            whole = at[-1] - at[0] + 1 == len(at)  # the part's rows read are one run
            for key, col in zip(keys, cols, strict=True):
                target = out.get(key)
                if target is not None:
                    _place(target, hit, col[at[0]:at[-1] + 1] if whole else list(map(col.__getitem__, at)))
        else:
            data = self.data
            for key, target in out.items():
                for j, i in zip(hit.tolist(), at, strict=True):
                    if key in data[i]:
                        target[j] = data[i][key]
        if "gone" in self.notes:
            gone = self.gone()
            for j, i in zip(hit.tolist(), at, strict=True):
                for k in gone.get(i, ()):
                    if k in out:
                        out[k][j] = None

    def links(self) -> dict[int, int]:
        """Index in this part -> seq of the record a ``grouped`` row went into."""
        notes = self.notes
        if "link_to" in notes:  # one seq per row, -1 for a row not linked
            return {i: seq for i, seq in enumerate(_untyped(notes["link_to"])) if seq >= 0}
        return dict(notes.get("link", ()))

    def gone(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for fields, idx in self.notes.get("gone", ()):
            for i in range(len(self.seqs)) if idx is None else idx:
                out.setdefault(i, []).extend(fields)
        return out


def _place(target: list[Any], hit: np.ndarray, values: list[Any]) -> None:
    """``target[hit[i]] = values[i]``: one slice assignment when ``hit`` is a run of slots."""
    lo = int(hit[0])
    if int(hit[-1]) - lo + 1 == len(hit):
        target[lo:lo + len(values)] = values
    else:
        for j, v in zip(hit.tolist(), values, strict=True):
            target[j] = v


class Batch(list):  # type: ignore[type-arg]
    """A batch of ``(record_id, seq, record)``; ``flat``: no record holds a list or an object (a
    step that changes nested values in place needs no deep copy of them)."""

    flat = False


class PartCursor:
    """One step's parts, walked by ranges that only move forward."""

    PAGE = 64

    def __init__(self, db: sqlite3.Connection, run: int, step: int):
        self.db, self.run, self.step = db, run, step
        self.active: list[Part] = []
        self._page: list[Part] = []
        self._last = -1
        self._done = False

    def _next(self) -> Part | None:
        if not self._page and not self._done:
            rows = self.db.execute(
                "SELECT id, lo, hi, seqs, codes FROM parts WHERE run=? AND step=? AND lo>? ORDER BY lo LIMIT ?",
                (self.run, self.step, self._last, self.PAGE)).fetchall()
            self._done = len(rows) < self.PAGE
            self._page = [Part(self.db, *r) for r in reversed(rows)]
            if rows:
                self._last = rows[-1][1]
        return self._page[-1] if self._page else None

    def upto(self, lo: int, hi: int) -> list[Part]:
        """The parts holding any seq in ``[lo, hi]``; parts that end before ``lo`` are let go."""
        self.active = [p for p in self.active if p.hi >= lo]
        while (p := self._next()) is not None and p.lo <= hi:
            self._page.pop()
            if p.hi >= lo:
                self.active.append(p)
        return [p for p in self.active if p.lo <= hi]
