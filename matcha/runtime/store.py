"""The run store: runs, the rows each step wrote, quarantine, approvals, publish ledger, model cache, artifacts.

SQLite (WAL) under ``.matcha/runs.db`` by default, or PostgreSQL when ``MATCHA_DATABASE_URL`` names
one (see :mod:`matcha.runtime.sql`: the same statements, translated). LangGraph state only carries
the run id; all records live here, so checkpoints stay small whatever the dataset size.

A record is an ``item`` of its run (an integer ``seq`` and its id; ``origin`` says which step made it:
the source, or an aggregating step). Each step writes, per batch, one *part* (see
:mod:`matcha.runtime.parts`) holding for each record it received a status (``out``, ``dropped``,
``quarantined``, or ``grouped`` into a record an aggregating step made) and **only the fields the
step changed** (removed fields noted apart). A record as it leaves a step is the merge of its rows
along the step's lineage (the source and every upstream step, in order). Step counts are derived
from the parts, so they always add up, and a re-entered step skips the records it already wrote.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from matcha.errors import RunError
from matcha.runtime import codec, parts, sql
from matcha.runtime.parts import Row
from matcha.runtime.store_review import ReviewTables
from matcha.runtime.tracked import Tracked
from matcha.secrets import mask

Record = dict[str, Any]


SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY, name TEXT, pipeline_path TEXT, base_dir TEXT, spec_text TEXT,
  status TEXT, error TEXT, created_at REAL, updated_at REAL, params TEXT
);
CREATE TABLE IF NOT EXISTS keys (kind TEXT, run INTEGER, name TEXT, key INTEGER, PRIMARY KEY (kind, run, name));
CREATE TABLE IF NOT EXISTS items (
  run INTEGER, seq INTEGER, record_id TEXT, origin INTEGER, PRIMARY KEY (run, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS items_id ON items (run, record_id);
-- source ids as one JSON list per ingested chunk (seqs lo..hi): one row per chunk rather than one
-- indexed row per record; moved into items the first time the run looks a record up by its id
CREATE TABLE IF NOT EXISTS id_chunks (
  run INTEGER, lo INTEGER, hi INTEGER, ids TEXT, PRIMARY KEY (run, lo)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS steps (
  run_id TEXT, step_id TEXT, status TEXT, started_at REAL, finished_at REAL, seconds REAL,
  extra TEXT, state TEXT, PRIMARY KEY (run_id, step_id)
);
CREATE TABLE IF NOT EXISTS artifacts (
  run_id TEXT, name TEXT, step_id TEXT, sha256 TEXT, size INTEGER, media_type TEXT, path TEXT, created_at REAL,
  PRIMARY KEY (run_id, name)
);
CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, value BLOB, created_at REAL);
CREATE TABLE IF NOT EXISTS vector_blocks (
  id INTEGER PRIMARY KEY AUTOINCREMENT, dim INTEGER, data BLOB, created_at REAL
);
CREATE TABLE IF NOT EXISTS vector_keys (key TEXT PRIMARY KEY, block INTEGER, row INTEGER) WITHOUT ROWID;
"""

SOURCE_STEP = "__source__"
_SCHEMA_READY: set[str] = set()


@dataclass
class RunRow:
    run_id: str
    name: str
    pipeline_path: str
    base_dir: str
    spec_text: str
    status: str
    error: str | None
    created_at: float
    updated_at: float
    params: dict[str, Any]


@dataclass
class StepCounts:
    step_id: str
    status: str
    received: int  # records offered to the step
    out: int
    dropped: int
    quarantined: int
    seconds: float | None
    extra: dict[str, Any]
    grouped: int = 0  # input records an aggregating step summarised into the records it made
    made: int = 0  # records an aggregating step made (they are counted in out/dropped/quarantined)

    @property
    def pending(self) -> int:
        done_in = self.out + self.dropped + self.quarantined - self.made + self.grouped
        return self.received - done_in


@dataclass
class Artifact:
    """A file a run produced (a report, a profile): stored once, named, hashed."""

    run_id: str
    name: str
    step: str
    sha256: str
    size: int
    media_type: str
    path: Path
    created_at: float



class RunStore(ReviewTables):
    """Thread-safe access to one run store (one connection per thread): a SQLite file, or a
    PostgreSQL database given as a ``postgresql://`` URL."""

    def __init__(self, path: Path | str):
        self.url: str | None = str(path) if sql.is_url(path) else None
        self.dialect = "postgresql" if self.url else "sqlite"
        self.path = Path(path) if self.url is None else Path()
        if self.url is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._conns: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._conns_lock = threading.Lock()
        self._keys: dict[tuple[str, int, str], int] = {}
        self._id_chunks: dict[tuple[int, int], list[str]] = {}  # the last few decoded (a chunk serves many batches)
        db = self._conn()
        if self.url in _SCHEMA_READY:  # this process made sure of the PostgreSQL schema already
            return
        db.executescript(SCHEMA + parts.PARTS_SCHEMA + self.REVIEW_SCHEMA)
        if self.dialect == "sqlite":
            self._migrate(db)
            return
        if db.execute("SELECT attstorage FROM pg_attribute WHERE attrelid = 'vector_blocks'::regclass "
                      "AND attname = 'data'").fetchone()[0] != "e":
            # vectors are read a few rows at a time (substring): keep blocks uncompressed (once)
            db.execute("ALTER TABLE vector_blocks ALTER COLUMN data SET STORAGE EXTERNAL")
        _SCHEMA_READY.add(str(self.url))

    def __repr__(self) -> str:
        return f"<RunStore {sql.redact(self.url) if self.url else self.path}>"

    def run_lock(self, run_id: str, run_dir: Path) -> sql.RunLock:
        """The lock a process holds while it drives ``run_id`` (file lock in ``run_dir`` for SQLite,
        an advisory lock for PostgreSQL)."""
        return sql.RunLock(self.url if self.url else run_dir, run_id)

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        columns = {row[1] for row in db.execute("PRAGMA table_info(approvals)")}
        if "mac" not in columns:  # a store created before decisions were signed
            db.execute("ALTER TABLE approvals ADD COLUMN mac TEXT")
        columns = {row[1] for row in db.execute("PRAGMA table_info(steps)")}
        if "state" not in columns:
            db.execute("ALTER TABLE steps ADD COLUMN state TEXT")
        if db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='rows'").fetchone():
            _rows_to_parts(db)

    # -- plumbing ---------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self.url is not None and not cast(sql.PgConnection, conn).usable:
            conn.close()  # the server went away, or a transaction was left broken: start afresh
            conn = None
        if conn is None:
            # a PgConnection offers the part of sqlite3.Connection the store uses (duck-typed)
            conn = sql.connect_sqlite(self.path) if self.url is None else cast(sqlite3.Connection,
                                                                               sql.PgConnection(self.url))
            self._local.conn = conn
            with self._conns_lock:
                # connections of threads that ended (a server's worker threads come and go) are closed
                for _thread, old in [c for c in self._conns if not c[0].is_alive()]:
                    old.close()
                self._conns = [c for c in self._conns if c[0].is_alive()]
                self._conns.append((threading.current_thread(), conn))
        return conn

    @contextmanager
    def tx(self, run: int | None = None) -> Iterator[sqlite3.Connection]:
        """One write transaction. SQLite has one writer at a time. On PostgreSQL the writers of one run
        (``run``: its key) go one at a time and those of different runs at once; the others (new run
        keys, the model cache, vectors) one at a time among themselves."""
        db = self._conn()
        if self.url is None:
            db.execute("BEGIN IMMEDIATE")
        else:
            cast(sql.PgConnection, db).begin(sql.WRITE_LOCK if run is None else sql.lock_key(f"write:{run}"))
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        with self._conns_lock:
            for _thread, conn in self._conns:
                conn.close()
            self._conns.clear()
        self._local = threading.local()

    def _key(self, kind: str, run: int, name: str) -> int:
        """A small integer standing for a run id (kind ``run``) or a step id of a run (kind ``step``)."""
        cached = self._keys.get((kind, run, name))
        if cached is not None:
            return cached
        db = self._conn()
        row = db.execute("SELECT key FROM keys WHERE kind=? AND run=? AND name=?", (kind, run, name)).fetchone()
        if row is None:
            with self.tx(run if kind == "step" else None) as tx:
                row = tx.execute("SELECT key FROM keys WHERE kind=? AND run=? AND name=?", (kind, run, name)).fetchone()
                if row is None:
                    nxt = tx.execute("SELECT COALESCE(MAX(key), 0) + 1 FROM keys WHERE kind=? AND run=?",
                                     (kind, run)).fetchone()[0]
                    tx.execute("INSERT INTO keys VALUES (?,?,?,?)", (kind, run, name, nxt))
                    row = (nxt,)
        self._keys[(kind, run, name)] = int(row[0])
        return int(row[0])

    def rkey(self, run_id: str) -> int:
        return self._key("run", 0, run_id)

    def skey(self, run_id: str, step_id: str) -> int:
        return self._key("step", self.rkey(run_id), step_id)

    # -- runs -------------------------------------------------------------------------------
    def create_run(self, run_id: str, name: str, pipeline_path: str, base_dir: str, spec_text: str,
                   params: dict[str, Any], status: str = "running") -> None:
        now = time.time()
        try:
            with self.tx() as db:
                db.execute(
                    "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (run_id, name, pipeline_path, base_dir, spec_text, status, None, now, now,
                     json.dumps(params)),
                )
        except sqlite3.IntegrityError:  # another process created it between our check and this insert
            raise RunError(f"a run with id '{run_id}' already exists; use `matcha resume {run_id}` "
                           "or another id") from None

    def get_run(self, run_id: str) -> RunRow | None:
        row = self._conn().execute("SELECT * FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return _run_row(row) if row else None

    def list_runs(self, limit: int = 50) -> list[RunRow]:
        rows = self._conn().execute("SELECT * FROM runs ORDER BY created_at DESC LIMIT ?", (limit,))
        return [_run_row(r) for r in rows]

    def set_status(self, run_id: str, status: str, error: str | None = None) -> None:
        with self.tx(self.rkey(run_id)) as db:
            db.execute("UPDATE runs SET status=?, error=?, updated_at=? WHERE run_id=?",
                       (status, mask(error) if error else None, time.time(), run_id))

    def delete_run(self, run_id: str) -> list[Path]:
        """Delete everything the store holds for a run; returns the artifact files to remove."""
        run = self.rkey(run_id)
        files = [a.path for a in self.artifacts(run_id)]
        with self.tx(run) as db:
            for table, col, val in (("parts", "run", run), ("items", "run", run), ("id_chunks", "run", run),
                                    ("steps", "run_id", run_id),
                                    ("artifacts", "run_id", run_id), ("approvals", "run_id", run_id),
                                    ("ledger", "run_id", run_id), ("runs", "run_id", run_id)):
                db.execute(f"DELETE FROM {table} WHERE {col}=?", (val,))
            db.execute("DELETE FROM keys WHERE kind='step' AND run=?", (run,))
        # an artifact file is shared by identical content: keep it while another run lists it
        still = {Path(r[0]) for r in self._conn().execute("SELECT DISTINCT path FROM artifacts")}
        return [f for f in files if f not in still]

    # -- items and rows ---------------------------------------------------------------------
    def add_items(self, run_id: str, step_id: str, rows: Iterable[tuple[str, int, str, str | None, Record]]) -> None:
        """Write records a step brings into the run (the source; library records): ``(record_id, seq,
        status, reason, data)``. Idempotent: re-ingesting after a crash rewrites the same part."""
        run, step = self.rkey(run_id), self.skey(run_id, step_id)
        origin = 0 if step_id == SOURCE_STEP else step
        rows = list(rows)
        if not rows:
            return
        part = parts.encode_items(run, step, rows)
        lo, hi = rows[0][1], rows[-1][1]
        with self.tx(run) as db:
            moved = db.execute("SELECT 1 FROM items WHERE run=? AND seq BETWEEN ? AND ? LIMIT 1", (run, lo, hi))
            if origin == 0 and hi - lo + 1 == len(rows) and moved.fetchone() is None:
                db.execute("INSERT OR REPLACE INTO id_chunks VALUES (?,?,?,?)",
                           (run, lo, hi, codec.dumps([r[0] for r in rows])))
                self._id_chunks.pop((run, lo), None)
            else:  # not a run of seqs, or ids already moved to items (a re-ingest after a crash)
                # SQLite's OR REPLACE, spelled out (PostgreSQL upserts on one constraint; items have two)
                db.executemany("DELETE FROM items WHERE run=? AND (seq=? OR record_id=?)",
                               [(run, seq, rid) for rid, seq, _s, _r, _d in rows])
                db.executemany("INSERT INTO items VALUES (?,?,?,?)",
                               [(run, seq, rid, origin) for rid, seq, _s, _r, _d in rows])
            db.execute(parts.INSERT, part)

    def index_ids(self, run_id: str) -> None:
        """Move the run's source ids from chunks into items, where they are found by id (once; ingest
        does it before a re-ingest, so that rows written before a crash are replaced as rows)."""
        self._index_ids(self.rkey(run_id))

    def _index_ids(self, run: int) -> None:
        db = self._conn()
        if db.execute("SELECT 1 FROM id_chunks WHERE run=? LIMIT 1", (run,)).fetchone() is None:
            return
        elements = ("json_each(c.ids) j" if self.dialect == "sqlite"
                    else "jsonb_array_elements_text(c.ids::jsonb) WITH ORDINALITY j(value, ord)")
        position = "CAST(j.key AS INTEGER)" if self.dialect == "sqlite" else "j.ord - 1"
        with self.tx(run) as db:
            db.execute(f"INSERT INTO items SELECT c.run, c.lo + {position}, j.value, 0 "
                       f"FROM id_chunks c, {elements} WHERE c.run=?", (run,))
            db.execute("DELETE FROM id_chunks WHERE run=?", (run,))

    def _ids_between(self, run: int, lo: int, hi: int) -> dict[int, str]:
        """The ids of the records at seqs ``lo`` to ``hi``."""
        db = self._conn()
        out = dict(db.execute("SELECT seq, record_id FROM items WHERE run=? AND seq BETWEEN ? AND ?",
                              (run, lo, hi)).fetchall())
        # the chunk holding lo, then those starting after it up to hi: two index lookups (a test on
        # hi would scan every chunk before lo, once per batch)
        spans = db.execute("SELECT lo, hi FROM id_chunks WHERE run=? AND lo<=? ORDER BY lo DESC LIMIT 1",
                           (run, lo)).fetchall()
        spans = [sp for sp in spans if sp[1] >= lo] + db.execute(
            "SELECT lo, hi FROM id_chunks WHERE run=? AND lo>? AND lo<=?", (run, lo, hi)).fetchall()
        for a, b in spans:
            ids = self._id_chunks.get((run, a))
            if ids is None or len(ids) != b - a + 1:
                text = db.execute("SELECT ids FROM id_chunks WHERE run=? AND lo=?", (run, a)).fetchone()[0]
                ids = self._id_chunks[(run, a)] = codec.loads(text)
                while len(self._id_chunks) > 8:
                    self._id_chunks.pop(next(iter(self._id_chunks)))
            start, end = max(a, lo), min(b, hi)
            out.update(zip(range(start, end + 1), ids[start - a:end - a + 1], strict=True))
        return out

    def make_items(self, run_id: str, step_id: str, record_ids: list[str]) -> dict[str, int]:
        """Seqs for records a step makes (aggregating steps): allocated once, the same on every call."""
        run, step = self.rkey(run_id), self.skey(run_id, step_id)
        with self.tx(run) as db:
            top = db.execute("SELECT COALESCE((SELECT MAX(seq) FROM items WHERE run=?), -1), "
                             "COALESCE((SELECT MAX(hi) FROM id_chunks WHERE run=?), -1)", (run, run)).fetchone()
            nxt = max(int(top[0]), int(top[1])) + 1
            have = dict(db.execute("SELECT record_id, seq FROM items WHERE run=? AND origin=?", (run, step)).fetchall())
            fresh = [rid for rid in record_ids if rid not in have]
            taken = self._chunk_ids_among(db, run, fresh, self.dialect) if fresh else set()
            for rid in record_ids:
                if rid in have:
                    continue
                try:
                    if rid in taken:
                        raise sqlite3.IntegrityError(rid)
                    db.execute("INSERT INTO items VALUES (?,?,?,?)", (run, nxt, rid, step))
                except sqlite3.IntegrityError:
                    raise RunError(f"step '{step_id}' made a record with id '{rid}', which another record of "
                                   "this run already has; make its ids distinct (e.g. prefix them)") from None
                have[rid] = nxt
                nxt += 1
        return {rid: have[rid] for rid in record_ids}

    @staticmethod
    def _chunk_ids_among(db: sqlite3.Connection, run: int, record_ids: list[str], dialect: str) -> set[str]:
        """Which of ``record_ids`` a source record has, among the ids not yet indexed (one scan)."""
        elements = "json_each(c.ids) j" if dialect == "sqlite" else "jsonb_array_elements_text(c.ids::jsonb) j(value)"
        out: set[str] = set()
        for i in range(0, len(record_ids), 500):
            chunk = record_ids[i:i + 500]
            out.update(r[0] for r in db.execute(
                f"SELECT j.value FROM id_chunks c, {elements} WHERE c.run=? AND j.value IN "
                f"({','.join('?' * len(chunk))})", (run, *chunk)))
        return out

    def seqs_of(self, run_id: str, record_ids: list[str]) -> dict[str, int]:
        run = self.rkey(run_id)
        self._index_ids(run)
        out: dict[str, int] = {}
        for i in range(0, len(record_ids), 500):
            chunk = record_ids[i:i + 500]
            out.update(self._conn().execute(
                f"SELECT record_id, seq FROM items WHERE run=? AND record_id IN ({','.join('?' * len(chunk))})",
                (run, *chunk)).fetchall())
        return out

    def rename_record(self, run_id: str, step_id: str, old_id: str, new_id: str) -> None:
        """Give a record another id (ingest renames a quarantined row whose made-up id a real record
        turns out to have); an item already holding ``new_id`` gives it up."""
        run = self.rkey(run_id)
        self._index_ids(run)
        if new_id == old_id:
            return
        with self.tx(run) as db:
            db.execute("DELETE FROM items WHERE run=? AND record_id=?", (run, new_id))
            db.execute("UPDATE items SET record_id=? WHERE run=? AND record_id=?", (new_id, run, old_id))

    def write_rows(self, run_id: str, step_id: str, rows: list[Row], *, made: bool = False,
                   decoded: bool = False) -> list[Record] | None:
        """Write a step's rows for a batch as one part, in one transaction (only the changed fields
        are stored). With ``decoded``, returns each row's stored data as a later read gives it, in
        seq order (JSON-normalised, secrets masked)."""
        if not rows:
            return [] if decoded else None
        run, step = self.rkey(run_id), self.skey(run_id, step_id)
        values = parts.encode(run, step, rows, made)
        with self.tx(run) as db:
            db.execute(parts.INSERT, values)
        if not decoded:
            return None
        stored = codec.loads(values[12])
        if isinstance(stored, dict):  # a table: the rows' fields once
            keys, cols = parts.columns_of(stored)
            return [dict(zip(keys, row, strict=True)) for row in zip(*cols, strict=True)]
        return list(stored)

    def write_part(self, run_id: str, step_id: str, seqs: np.ndarray, codes: bytes, data: list[Record] | dict[str, Any],
                   keys: set[str], reasons: list[list[Any]], notes: dict[str, Any], *, made: bool = False) -> None:
        """Write a batch's part already laid out (see :func:`parts.pack`), in one transaction."""
        run = self.rkey(run_id)
        values = parts.pack(run, self.skey(run_id, step_id), seqs, codes, data, keys, reasons, notes, made)
        with self.tx(run) as db:
            db.execute(parts.INSERT, values)

    def done_seqs(self, run_id: str, step_id: str, lo: int, hi: int) -> set[int]:
        """Seqs in ``[lo, hi]`` the step already wrote a row for."""
        run, step = self.rkey(run_id), self.skey(run_id, step_id)
        return {int(s) for p in parts.Part.spanning(self._conn(), run, step, lo, hi) for s in p.select(lo, hi, None)}

    def iter_input(self, run_id: str, lineage: Sequence[str], needs: Sequence[str], batch_size: int,
                   status: str = "out", join: bool = True, skip_step: str | None = None,
                   fields: Collection[str] | None = None) -> Iterator[list[tuple[str, int, Record]]]:
        """Batches of ``(record_id, seq, record)`` in seq order: the records every step of ``needs``
        passed on (with ``join``; else any of them), each merged over its rows along ``lineage``
        (the source and upstream steps in execution order; later steps' fields win). Records that
        ``skip_step`` already wrote a row for are left out (a resumed step). With ``fields``, only
        the steps that wrote or removed one of them are read (records may then hold other fields
        too, but every one of ``fields`` they have)."""
        run = self.rkey(run_id)
        db = self._conn()
        order = [self.skey(run_id, s) for s in lineage]
        if fields is not None:
            wanted = set(fields)
            order = [s for s in order if self._keys_of(run, s) & wanted]
        readers = [parts.PartCursor(db, run, s) for s in order]
        code = parts.CODE[status]
        for seqs in self._select(run_id, needs, status, join, skip_step, batch_size):
            lo, hi = int(seqs[0]), int(seqs[-1])
            ids = self._ids_between(run, lo, hi)
            recs: list[Record] = [Tracked() for _ in range(len(seqs))]
            flat = True
            for reader in readers:
                for part in reader.upto(lo, hi):
                    part.merge_into(recs, seqs, code)
                    flat = flat and part.flat
            batch = parts.Batch()
            batch.flat = flat
            for seq, rec in zip(seqs.tolist(), recs, strict=True):
                rid = ids.get(seq, f"#{seq}")
                dict.__setitem__(rec, "id", rid)
                batch.append((rid, seq, rec))
            yield batch

    def iter_columns(self, run_id: str, lineage: Sequence[str], needs: Sequence[str], batch_size: int,
                     fields: Collection[str], status: str = "out", join: bool = True,
                     skip_step: str | None = None) -> Iterator[tuple[np.ndarray, dict[str, list[Any]], Any]]:
        """:meth:`iter_input` a column at a time: ``(seqs, {field: values}, ids)`` per batch, where a
        record without a field has None and ``ids()`` reads the records' ids. Only the steps that
        wrote one of ``fields`` are read, and no dict is made per record."""
        run = self.rkey(run_id)
        db = self._conn()
        wanted = set(fields)
        order = [k for k in (self.skey(run_id, s) for s in lineage) if self._keys_of(run, k) & wanted]
        readers = [parts.PartCursor(db, run, s) for s in order]
        code = parts.CODE[status]
        for seqs in self._select(run_id, needs, status, join, skip_step, batch_size):
            lo, hi = int(seqs[0]), int(seqs[-1])
            out: dict[str, list[Any]] = {f: [None] * len(seqs) for f in fields}
            for reader in readers:
                for part in reader.upto(lo, hi):
                    part.columns_into(out, seqs, code)

            def ids(seqs: np.ndarray = seqs, lo: int = lo, hi: int = hi) -> list[str]:
                found = self._ids_between(run, lo, hi)
                return [found.get(s, f"#{s}") for s in seqs.tolist()]

            yield seqs, out, ids

    def _keys_of(self, run: int, step: int) -> set[str]:
        """Every field name a step wrote or removed."""
        out: set[str] = set()
        for (text,) in self._conn().execute("SELECT DISTINCT keys FROM parts WHERE run=? AND step=?", (run, step)):
            out.update(codec.loads(text or "[]"))
        return out

    def _select(self, run_id: str, needs: Sequence[str], status: str, join: bool, skip_step: str | None,
                batch_size: int) -> Iterator[np.ndarray]:
        """The seqs of the input records, in batches of ``batch_size`` (sorted arrays)."""
        run = self.rkey(run_id)
        db = self._conn()
        need = [self.skey(run_id, s) for s in needs]
        marks = ",".join(str(k) for k in need)
        lo, top = db.execute(f"SELECT MIN(lo), MAX(hi) FROM parts WHERE run=? AND step IN ({marks})",
                             (run,)).fetchone()
        if top is None:
            return
        cursors = [parts.PartCursor(db, run, s) for s in need]
        skip = parts.PartCursor(db, run, self.skey(run_id, skip_step)) if skip_step is not None else None
        code = parts.CODE[status]
        width = max(batch_size, 4096)
        pending: list[np.ndarray] = []
        held = 0
        a = int(lo)
        while a <= top:
            b = a + width - 1
            sets = []
            for cursor in cursors:
                got = [p.select(a, b, code) for p in cursor.upto(a, b)]
                sets.append(np.concatenate(got) if got else np.zeros(0, dtype=np.int64))
            sel = sets[0]
            for other in sets[1:]:
                sel = np.intersect1d(sel, other) if join else np.union1d(sel, other)
            if len(sets) == 1 and len(sel) > 1 and len(cursors[0].upto(a, b)) > 1:
                sel = np.sort(sel)  # parts that interleave (a step written in two passes)
            if skip is not None and len(sel):
                done = [p.select(a, b, None) for p in skip.upto(a, b)]
                if done:
                    sel = sel[~np.isin(sel, np.concatenate(done))]
            if len(sel):
                pending.append(sel)
                held += len(sel)
            while held >= batch_size:
                joined = np.concatenate(pending)
                yield joined[:batch_size]
                rest = joined[batch_size:]
                pending, held = ([rest] if len(rest) else []), len(rest)
            a = b + 1
        if held:
            yield np.concatenate(pending)

    def count_input(self, run_id: str, step_ids: Sequence[str]) -> int:
        """How many records a step needing ``step_ids`` receives (the join, see :meth:`iter_input`)."""
        run = self.rkey(run_id)
        if len(step_ids) == 1:
            row = self._conn().execute("SELECT COALESCE(SUM(n_out), 0) FROM parts WHERE run=? AND step=?",
                                       (run, self.skey(run_id, step_ids[0]))).fetchone()
            return int(row[0])
        return sum(len(s) for s in self._select(run_id, step_ids, "out", True, None, 65536))

    def count_rows(self, run_id: str, step_id: str, *, new: bool = False) -> int:
        """Rows a step wrote for its input records (``new``: for the records it made)."""
        run, step = self.rkey(run_id), self.skey(run_id, step_id)
        return int(self._conn().execute("SELECT COALESCE(SUM(n), 0) FROM parts WHERE run=? AND step=? AND made=?",
                                        (run, step, int(new))).fetchone()[0])

    def step_rows(self, run_id: str, step_id: str, status: str | None = None
                  ) -> Iterator[tuple[str, int, str, str | None, Record, list[str], int | None]]:
        """Every row a step wrote, in part order: ``(record_id, seq, status, reason, data, gone, link)``
        (the store's own view, for listings and tests)."""
        run, step = self.rkey(run_id), self.skey(run_id, step_id)
        db = self._conn()
        sql = "SELECT id, lo, hi, seqs, codes FROM parts WHERE run=? AND step=?"
        if status is not None:
            sql += f" AND n_{status} > 0"
        names: dict[int, str] = {}
        for row in db.execute(sql + " ORDER BY lo", (run, step)).fetchall():
            part = parts.Part(db, *row)
            codes = part.code_array().tolist()
            seqs = part.seqs.tolist()
            reasons = dict(part.notes.get("reason", ()))
            links = part.links()
            gone = part.gone()
            ids = self._ids_of(run, seqs)
            for i, (seq, c) in enumerate(zip(seqs, codes, strict=True)):
                st = parts.STATUSES[c]
                if status is None or st == status:
                    why = reasons.get(i)
                    if why is None and i in links:  # a grouping pass written a column at a time
                        into = links[i]
                        if into not in names:  # a few records made, many grouped: each looked up once
                            names[into] = self._ids_of(run, [into]).get(into, f"#{into}")
                        why = f"grouped into {names[into]}"
                    yield (ids.get(seq, f"#{seq}"), seq, st, why, part.data[i], gone.get(i, []), links.get(i))

    def _ids_of(self, run: int, seqs: list[int]) -> dict[int, str]:
        return self._ids_between(run, min(seqs), max(seqs)) if seqs else {}

    def quarantined(self, run_id: str) -> list[dict[str, Any]]:
        """Quarantined records with the step and reason (the record's fields as that step had them)."""
        run = self.rkey(run_id)
        names = sorted((int(k), str(n)) for k, n in self._conn().execute(
            "SELECT key, name FROM keys WHERE kind='step' AND run=?", (run,)))
        return [{"step": _public(name), "id": rid, "reason": why, "record": data}
                for _key, name in names
                for rid, _seq, _st, why, data, _gone, _link in self.step_rows(run_id, name, "quarantined")]

    def members(self, run_id: str, step_id: str, record_id: str) -> Iterator[str]:
        """Ids of the records an aggregating step summarised into ``record_id`` (its lineage)."""
        run = self.rkey(run_id)
        self._index_ids(run)
        row = self._conn().execute("SELECT seq FROM items WHERE run=? AND record_id=?", (run, record_id)).fetchone()
        if row is None:
            return
        for rid, _seq, _st, _why, _data, _gone, link in self.step_rows(run_id, step_id, "grouped"):
            if link == row[0]:
                yield rid

    # -- steps ------------------------------------------------------------------------------
    def step_started(self, run_id: str, step_id: str) -> None:
        with self.tx(self.rkey(run_id)) as db:
            db.execute(
                "INSERT INTO steps (run_id, step_id, status, started_at, extra) VALUES (?,?,?,?,?) "
                "ON CONFLICT(run_id, step_id) DO UPDATE SET status='running'",
                (run_id, step_id, "running", time.time(), "{}"))

    def step_finished(self, run_id: str, step_id: str, status: str = "done",
                      extra: dict[str, Any] | None = None) -> None:
        now = time.time()
        with self.tx(self.rkey(run_id)) as db:
            row = db.execute("SELECT started_at, extra FROM steps WHERE run_id=? AND step_id=?",
                             (run_id, step_id)).fetchone()
            started = row[0] if row and row[0] else now
            merged = {**json.loads(row[1] or "{}"), **(extra or {})} if row else dict(extra or {})
            db.execute(
                "INSERT INTO steps (run_id, step_id, status, started_at, finished_at, seconds, extra) "
                "VALUES (?,?,?,?,?,?,?) ON CONFLICT(run_id, step_id) DO UPDATE SET status=excluded.status, "
                "finished_at=excluded.finished_at, seconds=excluded.seconds, extra=excluded.extra",
                (run_id, step_id, status, started, now, now - started, json.dumps(merged)))

    def set_step_status(self, run_id: str, step_id: str, status: str) -> None:
        with self.tx(self.rkey(run_id)) as db:
            db.execute("UPDATE steps SET status=? WHERE run_id=? AND step_id=?", (status, run_id, step_id))

    def add_step_extra(self, run_id: str, step_id: str, counters: dict[str, Any], *, replace: bool = False) -> None:
        """Add to numeric counters (e.g. cache hits) of a step; with ``replace``, set values instead."""
        with self.tx(self.rkey(run_id)) as db:
            row = db.execute("SELECT extra FROM steps WHERE run_id=? AND step_id=?", (run_id, step_id)).fetchone()
            extra = json.loads(row[0] or "{}") if row else {}
            for k, v in counters.items():
                extra[k] = v if replace else int(extra.get(k, 0)) + v
            db.execute("UPDATE steps SET extra=? WHERE run_id=? AND step_id=?",
                       (json.dumps(extra), run_id, step_id))

    def step_state(self, run_id: str, step_id: str) -> dict[str, Any] | None:
        """What a dataset-scoped step learned from its whole input (saved once, read on resume)."""
        row = self._conn().execute("SELECT state FROM steps WHERE run_id=? AND step_id=?",
                                   (run_id, step_id)).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def set_step_state(self, run_id: str, step_id: str, state: dict[str, Any]) -> None:
        with self.tx(self.rkey(run_id)) as db:
            db.execute("UPDATE steps SET state=? WHERE run_id=? AND step_id=?", (json.dumps(state), run_id, step_id))

    def step_counts(self, run_id: str, step_id: str, needs: Sequence[str]) -> StepCounts:
        db = self._conn()
        run, step = self.rkey(run_id), self.skey(run_id, step_id)
        sums = db.execute("SELECT SUM(n_out), SUM(n_dropped), SUM(n_quarantined), SUM(n_grouped), SUM(made) "
                          "FROM parts WHERE run=? AND step=?", (run, step)).fetchone()
        counts = {s: int(v or 0) for s, v in zip(parts.STATUSES, sums, strict=False)}
        n_made = 0
        if sums[4] and step_id != SOURCE_STEP:
            n_made = int(db.execute("SELECT COUNT(*) FROM items WHERE run=? AND origin=?", (run, step)).fetchone()[0])
        received = self.count_input(run_id, needs) if needs else sum(counts.values())
        row = db.execute("SELECT status, seconds, extra FROM steps WHERE run_id=? AND step_id=?",
                         (run_id, step_id)).fetchone()
        return StepCounts(
            step_id=step_id, status=row[0] if row else "pending", received=received,
            out=counts.get("out", 0), dropped=counts.get("dropped", 0), quarantined=counts.get("quarantined", 0),
            seconds=row[1] if row else None, extra=json.loads(row[2] or "{}") if row else {},
            grouped=counts.get("grouped", 0), made=n_made,
        )

    # -- artifacts --------------------------------------------------------------------------
    def add_artifact(self, run_id: str, step_id: str, name: str, content: bytes, media_type: str,
                     folder: Path) -> Artifact:
        """Store ``content`` once (``folder/<sha256>``) and list it with the run under ``name``."""
        sha = hashlib.sha256(content).hexdigest()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / sha
        if not path.exists() or hashlib.sha256(path.read_bytes()).hexdigest() != sha:
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(content)
            tmp.replace(path)
        now = time.time()
        with self.tx(self.rkey(run_id)) as db:
            db.execute("INSERT OR REPLACE INTO artifacts VALUES (?,?,?,?,?,?,?,?)",
                       (run_id, name, step_id, sha, len(content), media_type, str(path), now))
        return Artifact(run_id, name, step_id, sha, len(content), media_type, path, now)

    def artifacts(self, run_id: str) -> list[Artifact]:
        rows = self._conn().execute("SELECT * FROM artifacts WHERE run_id=? ORDER BY created_at, name", (run_id,))
        return [Artifact(r["run_id"], r["name"], r["step_id"], r["sha256"], r["size"], r["media_type"],
                         Path(r["path"]), r["created_at"]) for r in rows]

    # -- model cache ------------------------------------------------------------------------
    def cache_get_many(self, keys: list[str]) -> dict[str, bytes]:
        db = self._conn()
        out: dict[str, bytes] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for k, v in db.execute(f"SELECT key, value FROM cache WHERE key IN ({marks})", chunk):
                out[k] = v
        return out

    def cache_put_many(self, items: dict[str, bytes]) -> None:
        now = time.time()
        with self.tx() as db:
            db.executemany("INSERT OR REPLACE INTO cache VALUES (?,?,?)", [(k, v, now) for k, v in items.items()])

    # -- vectors ----------------------------------------------------------------------------
    # Embeddings are stored as blocks (one float32 matrix per model call) and found by content key
    # (model fingerprint + text): a batch of vectors is one read, not one lookup per vector.
    def put_vectors(self, keys: list[str], matrix: np.ndarray) -> dict[str, tuple[int, int]]:
        """Store ``matrix`` (one row per key) as one block; returns where each key's vector is."""
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        with self.tx() as db:
            block = int(db.execute("INSERT INTO vector_blocks (dim, data, created_at) VALUES (?,?,?) RETURNING id",
                                   (int(matrix.shape[1]), matrix.tobytes(), time.time())).fetchone()[0])
            db.executemany("INSERT OR REPLACE INTO vector_keys VALUES (?,?,?)",
                           [(k, block, i) for i, k in enumerate(keys)])
        return {k: (block, i) for i, k in enumerate(keys)}

    def vectors_at(self, keys: list[str]) -> dict[str, tuple[int, int]]:
        """Where the vectors of ``keys`` are stored (keys without one are left out)."""
        out: dict[str, tuple[int, int]] = {}
        db = self._conn()
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for k, block, row in db.execute(f"SELECT key, block, row FROM vector_keys WHERE key IN ({marks})", chunk):
                out[k] = (block, row)
        return out

    def vector_block(self, block: int) -> np.ndarray | None:
        """A block of vectors (read-only; the last few read are kept)."""
        blocks: dict[int, np.ndarray] = self.__dict__.setdefault("_blocks", {})
        got = blocks.get(block)
        if got is None:
            row = self._conn().execute("SELECT dim, data FROM vector_blocks WHERE id=?", (block,)).fetchone()
            if row is None:
                return None
            got = np.frombuffer(row[1], dtype=np.float32).reshape(-1, row[0])
            if len(blocks) >= 4:
                blocks.pop(next(iter(blocks)))
            blocks[block] = got
        return got

    def vectors_matrix(self, refs: Sequence[tuple[str, Sequence[int] | None]]) -> np.ndarray | None:
        """The vectors of ``refs`` as one ``(n, dim)`` matrix, filled a block at a time (no array per
        vector), when every reference is placed, still stored where it says, and of one size; None
        otherwise (then :meth:`vectors_for` finds them one by one)."""
        try:
            at = np.array([where for _key, where in refs], dtype=np.int64).reshape(len(refs), 2)
        except (TypeError, ValueError):
            return None  # a reference without a place
        order = np.argsort(at[:, 0], kind="stable")
        blocks, starts = np.unique(at[order, 0], return_index=True)
        out: np.ndarray | None = None
        for block, idx in zip(blocks.tolist(), np.split(order, starts[1:]), strict=True):
            matrix = self._block_rows(block, at[idx, 1])
            if matrix is None or (out is not None and matrix.shape[1] != out.shape[1]):
                return None
            if out is None:
                out = np.empty((len(refs), matrix.shape[1]), dtype=np.float32)
            out[idx] = matrix
        return out

    def _block_rows(self, block: int, rows: np.ndarray) -> np.ndarray | None:
        """Rows of a block of vectors; a few rows of a large block are read alone (a sample spread
        over a million vectors would otherwise read all 1.5 GB of them). None when the block or a
        row is gone."""
        cached = self.__dict__.get("_blocks", {}).get(block)
        if cached is None and len(rows) * 8 < VECTORS_PER_BLOCK_HINT:
            db = self._conn()
            found = db.execute("SELECT dim FROM vector_blocks WHERE id=?", (block,)).fetchone()
            if found is None:
                return None
            width = 4 * int(found[0])
            if self.dialect == "postgresql":
                return self._pg_block_rows(block, rows, width)
            with db.blobopen("vector_blocks", "data", block, readonly=True) as blob:
                if len(blob) >= 8 * len(rows) * width:  # worth reading alone
                    if int(rows.max()) * width >= len(blob):
                        return None
                    chunks = []
                    for r in rows.tolist():
                        blob.seek(r * width)
                        chunks.append(blob.read(width))
                    return np.frombuffer(b"".join(chunks), dtype=np.float32).reshape(len(rows), width // 4)
        matrix = self.vector_block(block)
        if matrix is None or int(rows.max()) >= len(matrix):
            return None
        return matrix[rows]

    def _pg_block_rows(self, block: int, rows: np.ndarray, width: int) -> np.ndarray | None:
        """A few rows of a block read from PostgreSQL, each by ``substring`` (the column is stored
        uncompressed, so the server reads only those bytes)."""
        got = self._conn().execute(
            "SELECT substring(b.data FROM (u.r * ? + 1)::int FOR ?::int) FROM vector_blocks b, "
            "unnest(?::bigint[]) WITH ORDINALITY u(r, o) WHERE b.id=? ORDER BY u.o",
            (width, width, rows.tolist(), block)).fetchall()
        if len(got) != len(rows) or any(len(g[0]) != width for g in got):
            return None
        return np.frombuffer(b"".join(g[0] for g in got), dtype=np.float32).reshape(len(rows), width // 4)

    def vectors_for(self, refs: Sequence[tuple[str, Sequence[int] | None]]) -> list[np.ndarray | None]:
        """The vector of each ``(key, (block, row) or None)`` reference, None where none is stored."""
        out: list[np.ndarray | None] = [None] * len(refs)
        blocks: dict[int, tuple[list[int], list[int]]] = {}
        unplaced: dict[str, list[int]] = {}
        for i, (key, at) in enumerate(refs):
            if at:
                got = blocks.get(at[0])
                if got is None:
                    blocks[at[0]] = ([i], [at[1]])
                else:
                    got[0].append(i)
                    got[1].append(at[1])
            else:
                unplaced.setdefault(key, []).append(i)
        for block, (idx, rows) in blocks.items():
            matrix = self.vector_block(int(block))
            if matrix is None or max(rows) >= len(matrix):  # pruned, or superseded: find it by key
                for i in idx:
                    unplaced.setdefault(refs[i][0], []).append(i)
                continue
            for i, row in zip(idx, matrix[rows], strict=True):  # one fancy-index per block
                out[i] = row
        if unplaced:
            self._vectors_by_key(unplaced, out)
        return out

    def _vectors_by_key(self, unplaced: dict[str, list[int]], out: list[np.ndarray | None]) -> None:
        found = self.vectors_at(list(unplaced))
        for key, (block, row) in found.items():
            matrix = self.vector_block(block)
            if matrix is not None and row < len(matrix):
                for i in unplaced[key]:
                    out[i] = matrix[row]
        legacy = self.cache_get_many([k for k in unplaced if k not in found])  # stores before blocks
        for key, blob in legacy.items():
            for i in unplaced[key]:
                out[i] = np.frombuffer(blob, dtype=np.float32)


#: a block holds one model call's vectors (the embed step's batches: 256 by default)
VECTORS_PER_BLOCK_HINT = 256


def _rows_to_parts(db: sqlite3.Connection) -> None:
    """Move a store written before parts (one row per record and step) to parts, once."""
    db.execute("BEGIN IMMEDIATE")
    try:
        made = set(db.execute("SELECT DISTINCT run, origin FROM items WHERE origin != 0").fetchall())
        rows: list[Row] = []
        key: tuple[int, int, bool] | None = None
        cur = db.execute("SELECT r.run, r.step, r.seq, r.status, r.reason, r.data, r.gone, r.link, i.origin "
                         "FROM rows r LEFT JOIN items i ON i.run=r.run AND i.seq=r.seq ORDER BY r.run, r.step, r.seq")
        for run, step, seq, status, reason, data, gone, link, origin in cur:
            k = (run, step, (run, origin) in made and origin == step)
            if rows and (k != key or len(rows) >= 2000):
                assert key is not None
                db.execute(parts.INSERT, parts.encode(key[0], key[1], rows, key[2]))
                rows = []
            key = k
            rows.append((seq, status, reason, codec.loads(data or "{}"), codec.loads(gone) if gone else None, link))
        if rows and key is not None:
            db.execute(parts.INSERT, parts.encode(key[0], key[1], rows, key[2]))
        db.execute("DROP TABLE rows")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def sha256_text(text: str) -> str:
    """The content hash bound to an approval decision and checked again before publishing."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_bytes(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _public(step_id: str) -> str:
    return "source" if step_id == SOURCE_STEP else step_id


def _run_row(row: sqlite3.Row) -> RunRow:
    return RunRow(
        run_id=row["run_id"], name=row["name"], pipeline_path=row["pipeline_path"], base_dir=row["base_dir"],
        spec_text=row["spec_text"], status=row["status"], error=row["error"], created_at=row["created_at"],
        updated_at=row["updated_at"], params=json.loads(row["params"] or "{}"),
    )
