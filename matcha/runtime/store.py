"""The run store: runs, records per step, quarantine, approvals, publish ledger and model cache.

SQLite (WAL) under ``.matcha/runs.db`` by default. LangGraph state only carries the run id; all
records live here, so checkpoints stay small whatever the dataset size. Every step's result for a
record is one row in ``records`` with a status (``out``, ``dropped``, ``quarantined``): step counts
are derived from those rows, so they always add up, and a step that is re-entered after a crash
skips the records it already finished.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matcha.errors import RunError
from matcha.runtime import integrity
from matcha.secrets import mask, mask_obj

Record = dict[str, Any]

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY, name TEXT, pipeline_path TEXT, base_dir TEXT, spec_text TEXT,
  status TEXT, error TEXT, created_at REAL, updated_at REAL, params TEXT
);
CREATE TABLE IF NOT EXISTS records (
  run_id TEXT, step_id TEXT, record_id TEXT, seq INTEGER, status TEXT, reason TEXT, data TEXT,
  PRIMARY KEY (run_id, step_id, record_id)
);
CREATE INDEX IF NOT EXISTS records_seq ON records (run_id, step_id, status, seq);
CREATE TABLE IF NOT EXISTS steps (
  run_id TEXT, step_id TEXT, status TEXT, started_at REAL, finished_at REAL, seconds REAL,
  extra TEXT, PRIMARY KEY (run_id, step_id)
);
CREATE TABLE IF NOT EXISTS approvals (
  run_id TEXT, step_id TEXT, record_id TEXT, seq INTEGER, field TEXT, status TEXT, ai_text TEXT,
  final_text TEXT, sha256 TEXT, reviewer TEXT, decided_at REAL, reason TEXT, context TEXT, mac TEXT,
  PRIMARY KEY (run_id, step_id, record_id)
);
CREATE INDEX IF NOT EXISTS approvals_status ON approvals (run_id, status);
CREATE INDEX IF NOT EXISTS approvals_record ON approvals (run_id, record_id);
CREATE TABLE IF NOT EXISTS ledger (
  run_id TEXT, step_id TEXT, record_id TEXT, sha256 TEXT, status TEXT, at REAL,
  PRIMARY KEY (run_id, step_id, record_id, sha256)
);
CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, value BLOB, created_at REAL);
"""


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

    @property
    def pending(self) -> int:
        return self.received - self.out - self.dropped - self.quarantined


class RunStore:
    """Thread-safe access to one SQLite run store (one connection per thread)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        db = self._conn()
        db.executescript(SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(approvals)")}
        if "mac" not in columns:  # a store created before decisions were signed
            db.execute("ALTER TABLE approvals ADD COLUMN mac TEXT")

    # -- plumbing ---------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        with self._conns_lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        self._local = threading.local()

    # -- runs -------------------------------------------------------------------------------
    def create_run(self, run_id: str, name: str, pipeline_path: str, base_dir: str, spec_text: str,
                   params: dict[str, Any]) -> None:
        now = time.time()
        try:
            with self.tx() as db:
                db.execute(
                    "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (run_id, name, pipeline_path, base_dir, spec_text, "running", None, now, now,
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
        with self.tx() as db:
            db.execute("UPDATE runs SET status=?, error=?, updated_at=? WHERE run_id=?",
                       (status, mask(error) if error else None, time.time(), run_id))

    # -- records ----------------------------------------------------------------------------
    def write_records(self, run_id: str, step_id: str,
                      rows: Iterable[tuple[str, int, str, str | None, Record]]) -> None:
        """Write ``(record_id, seq, status, reason, data)`` rows for a step in one transaction."""
        with self.tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO records VALUES (?,?,?,?,?,?,?)",
                [(run_id, step_id, rid, seq, status, mask(reason) if reason else None,
                  json.dumps(mask_obj(data), ensure_ascii=False, default=str))
                 for rid, seq, status, reason, data in rows],
            )

    def done_ids(self, run_id: str, step_id: str) -> set[str]:
        rows = self._conn().execute("SELECT record_id FROM records WHERE run_id=? AND step_id=?",
                                    (run_id, step_id))
        return {r[0] for r in rows}

    def iter_output(self, run_id: str, step_ids: list[str], batch_size: int,
                    status: str = "out", join: bool = True) -> Iterator[list[tuple[str, int, Record]]]:
        """Batches of ``(record_id, seq, record)`` in source order; records of several steps are merged
        by id (fields of later steps in ``step_ids`` win). With ``join`` (fan-in), only records that
        every step passed on are yielded: a record dropped by one branch does not reach the merge."""
        db = self._conn()
        marks = ",".join("?" * len(step_ids))
        last = -1
        order = {s: i for i, s in enumerate(step_ids)}
        while True:
            seqs = [r[0] for r in db.execute(
                f"SELECT DISTINCT seq FROM records WHERE run_id=? AND step_id IN ({marks}) AND status=? "
                "AND seq>? ORDER BY seq LIMIT ?", (run_id, *step_ids, status, last, batch_size))]
            if not seqs:
                return
            rows = db.execute(
                f"SELECT record_id, seq, step_id, data FROM records WHERE run_id=? AND step_id IN ({marks}) "
                "AND status=? AND seq BETWEEN ? AND ? ORDER BY seq", (run_id, *step_ids, status, seqs[0], seqs[-1]))
            merged: dict[str, tuple[int, list[tuple[int, Record]]]] = {}
            for rid, seq, sid, data in rows:
                merged.setdefault(rid, (seq, []))[1].append((order[sid], json.loads(data)))
            batch = []
            for rid, (seq, parts) in sorted(merged.items(), key=lambda kv: kv[1][0]):
                if join and len(parts) < len(step_ids):
                    continue
                rec: Record = {}
                for _, part in sorted(parts, key=lambda p: p[0]):
                    rec.update(part)
                batch.append((rid, seq, rec))
            yield batch
            last = seqs[-1]

    def count_input(self, run_id: str, step_ids: list[str]) -> int:
        """How many records a step needing ``step_ids`` receives (the join, see :meth:`iter_output`)."""
        marks = ",".join("?" * len(step_ids))
        row = self._conn().execute(
            f"SELECT COUNT(*) FROM (SELECT record_id FROM records WHERE run_id=? AND step_id IN ({marks}) "
            "AND status='out' GROUP BY record_id HAVING COUNT(*) = ?)", (run_id, *step_ids, len(step_ids))).fetchone()
        return int(row[0])

    def quarantined(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._conn().execute(
            "SELECT step_id, record_id, reason, data FROM records WHERE run_id=? AND status='quarantined' "
            "ORDER BY step_id, seq", (run_id,))
        return [{"step": s, "id": r, "reason": why, "record": json.loads(d)} for s, r, why, d in rows]

    def rename_record(self, run_id: str, step_id: str, old_id: str, new_id: str) -> None:
        """Give a written record another id; a row already holding ``new_id`` is replaced (ingest renames
        a quarantined row when a real record turns out to have its made-up id)."""
        with self.tx() as db:
            db.execute("UPDATE OR REPLACE records SET record_id=? WHERE run_id=? AND step_id=? AND record_id=?",
                       (new_id, run_id, step_id, old_id))

    # -- steps ------------------------------------------------------------------------------
    def step_started(self, run_id: str, step_id: str) -> None:
        with self.tx() as db:
            db.execute(
                "INSERT INTO steps (run_id, step_id, status, started_at, extra) VALUES (?,?,?,?,?) "
                "ON CONFLICT(run_id, step_id) DO UPDATE SET status='running'",
                (run_id, step_id, "running", time.time(), "{}"))

    def step_finished(self, run_id: str, step_id: str, status: str = "done",
                      extra: dict[str, Any] | None = None) -> None:
        now = time.time()
        with self.tx() as db:
            row = db.execute("SELECT started_at, extra FROM steps WHERE run_id=? AND step_id=?",
                             (run_id, step_id)).fetchone()
            started = row[0] if row and row[0] else now
            merged = {**json.loads(row[1] or "{}"), **(extra or {})} if row else dict(extra or {})
            db.execute(
                "INSERT OR REPLACE INTO steps VALUES (?,?,?,?,?,?,?)",
                (run_id, step_id, status, started, now, now - started, json.dumps(merged)))

    def set_step_status(self, run_id: str, step_id: str, status: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE steps SET status=? WHERE run_id=? AND step_id=?", (status, run_id, step_id))

    def add_step_extra(self, run_id: str, step_id: str, counters: dict[str, int]) -> None:
        """Add to numeric counters (e.g. cache hits) of a step."""
        with self.tx() as db:
            row = db.execute("SELECT extra FROM steps WHERE run_id=? AND step_id=?", (run_id, step_id)).fetchone()
            extra = json.loads(row[0] or "{}") if row else {}
            for k, v in counters.items():
                extra[k] = int(extra.get(k, 0)) + v
            db.execute("UPDATE steps SET extra=? WHERE run_id=? AND step_id=?",
                       (json.dumps(extra), run_id, step_id))

    def step_counts(self, run_id: str, step_id: str, needs: list[str]) -> StepCounts:
        db = self._conn()
        counts = dict(db.execute(
            "SELECT status, COUNT(*) FROM records WHERE run_id=? AND step_id=? GROUP BY status",
            (run_id, step_id)).fetchall())
        received = self.count_input(run_id, needs) if needs else sum(counts.values())
        row = db.execute("SELECT status, seconds, extra FROM steps WHERE run_id=? AND step_id=?",
                         (run_id, step_id)).fetchone()
        return StepCounts(
            step_id=step_id,
            status=row[0] if row else "pending",
            received=received,
            out=counts.get("out", 0),
            dropped=counts.get("dropped", 0),
            quarantined=counts.get("quarantined", 0),
            seconds=row[1] if row else None,
            extra=json.loads(row[2] or "{}") if row else {},
        )

    # -- approvals --------------------------------------------------------------------------
    def add_pending(self, run_id: str, step_id: str, items: list[tuple[str, int, str, str, Record]]) -> None:
        """Add ``(record_id, seq, field, ai_text, context)`` as pending; existing items are kept."""
        with self.tx() as db:
            db.executemany(
                "INSERT OR IGNORE INTO approvals (run_id, step_id, record_id, seq, field, status, ai_text, context)"
                " VALUES (?,?,?,?,?,'pending',?,?)",
                [(run_id, step_id, rid, seq, field, mask(text),
                  json.dumps(mask_obj(ctx), ensure_ascii=False, default=str))
                 for rid, seq, field, text, ctx in items])

    def approvals(self, run_id: str, step_id: str | None = None,
                  status: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM approvals WHERE run_id=?"
        args: list[Any] = [run_id]
        if step_id:
            sql += " AND step_id=?"
            args.append(step_id)
        if status:
            sql += " AND status=?"
            args.append(status)
        rows = self._conn().execute(sql + " ORDER BY step_id, seq", args).fetchall()
        return [{**dict(r), "context": json.loads(r["context"] or "{}")} for r in rows]

    def count_approvals(self, run_id: str, step_id: str | None = None, status: str | None = None) -> int:
        sql, args = "SELECT COUNT(*) FROM approvals WHERE run_id=?", [run_id]
        if step_id:
            sql, args = sql + " AND step_id=?", [*args, step_id]
        if status:
            sql, args = sql + " AND status=?", [*args, status]
        return int(self._conn().execute(sql, args).fetchone()[0])

    def decisions_for(self, run_id: str, step_ids: list[str], record_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Approval rows of ``record_ids`` in ``step_ids``, by record: one query per chunk of a batch,
        so publishing a batch costs the same whatever the size of the run."""
        out: dict[str, list[dict[str, Any]]] = {}
        if not step_ids:
            return out
        steps = ",".join("?" * len(step_ids))
        for i in range(0, len(record_ids), 500):
            chunk = record_ids[i:i + 500]
            rows = self._conn().execute(
                f"SELECT * FROM approvals WHERE run_id=? AND step_id IN ({steps}) "
                f"AND record_id IN ({','.join('?' * len(chunk))}) ORDER BY step_id", (run_id, *step_ids, *chunk))
            for r in rows:
                out.setdefault(r["record_id"], []).append({**dict(r), "context": json.loads(r["context"] or "{}")})
        return out

    def decide(self, run_id: str, step_id: str, record_id: str, *, status: str, final_text: str | None,
               sha256: str | None, reviewer: str, reason: str | None) -> bool:
        """Record a signed decision on a pending item; False when it is not pending."""
        key = integrity.installation_key()
        with self.tx() as db:
            row = db.execute("SELECT * FROM approvals WHERE run_id=? AND step_id=? AND record_id=? "
                             "AND status='pending'", (run_id, step_id, record_id)).fetchone()
            if row is None:
                return False
            decision = {**dict(row), "status": status, "final_text": final_text, "sha256": sha256,
                        "reviewer": reviewer, "decided_at": time.time(), "reason": reason}
            decision["mac"] = integrity.sign(decision, key)
            db.execute(
                "UPDATE approvals SET status=?, final_text=?, sha256=?, reviewer=?, decided_at=?, reason=?, mac=? "
                "WHERE run_id=? AND step_id=? AND record_id=? AND status='pending'",
                (status, final_text, sha256, reviewer, decision["decided_at"], reason, decision["mac"],
                 run_id, step_id, record_id))
            return True

    # -- publish ledger ---------------------------------------------------------------------
    def ledger_status(self, run_id: str, step_id: str, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        wanted = set(keys)
        out: dict[tuple[str, str], str] = {}
        ids = sorted({rid for rid, _ in keys})
        for i in range(0, len(ids), 500):  # one query per chunk, not one per item
            chunk = ids[i:i + 500]
            rows = self._conn().execute(
                f"SELECT record_id, sha256, status FROM ledger WHERE run_id=? AND step_id=? "
                f"AND record_id IN ({','.join('?' * len(chunk))})", (run_id, step_id, *chunk))
            out.update({(rid, sha): st for rid, sha, st in rows if (rid, sha) in wanted})
        return out

    def ledger_mark(self, run_id: str, step_id: str, keys: list[tuple[str, str]], status: str) -> None:
        now = time.time()
        with self.tx() as db:
            db.executemany("INSERT OR REPLACE INTO ledger VALUES (?,?,?,?,?,?)",
                           [(run_id, step_id, rid, sha, status, now) for rid, sha in keys])

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


def sha256_text(text: str) -> str:
    """The content hash bound to an approval decision and checked again before publishing."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _run_row(row: sqlite3.Row) -> RunRow:
    return RunRow(
        run_id=row["run_id"], name=row["name"], pipeline_path=row["pipeline_path"], base_dir=row["base_dir"],
        spec_text=row["spec_text"], status=row["status"], error=row["error"], created_at=row["created_at"],
        updated_at=row["updated_at"], params=json.loads(row["params"] or "{}"),
    )
