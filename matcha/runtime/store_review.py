"""The run store's review tables: approval items and decisions, and the publish ledger.

Every query here touches the items it names or one page of items, never the whole queue: deciding
one item, listing a page or publishing a batch costs the same at 10 or 1,000,000 pending items.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from matcha.runtime import integrity
from matcha.secrets import mask, mask_obj

Record = dict[str, Any]


class ReviewTables:
    REVIEW_SCHEMA = """
CREATE TABLE IF NOT EXISTS approvals (
  run_id TEXT, step_id TEXT, record_id TEXT, seq INTEGER, field TEXT, status TEXT, ai_text TEXT,
  final_text TEXT, sha256 TEXT, reviewer TEXT, decided_at REAL, reason TEXT, context TEXT, mac TEXT,
  PRIMARY KEY (run_id, step_id, record_id)
);
CREATE INDEX IF NOT EXISTS approvals_page ON approvals (run_id, status, step_id, seq);
CREATE INDEX IF NOT EXISTS approvals_record ON approvals (run_id, record_id);
CREATE INDEX IF NOT EXISTS approvals_decided ON approvals (run_id, decided_at, step_id, record_id);
CREATE TABLE IF NOT EXISTS ledger (
  run_id TEXT, step_id TEXT, record_id TEXT, sha256 TEXT, status TEXT, at REAL,
  PRIMARY KEY (run_id, step_id, record_id, sha256)
);
"""

    def _conn(self) -> sqlite3.Connection:
        raise NotImplementedError

    def tx(self, run: int | None = None) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def rkey(self, run_id: str) -> int:
        raise NotImplementedError

    # -- approvals --------------------------------------------------------------------------
    def add_pending(self, run_id: str, step_id: str, items: list[tuple[str, int, str, str, Record]]) -> None:
        """Add ``(record_id, seq, field, ai_text, context)`` as pending; existing items are kept."""
        with self.tx(self.rkey(run_id)) as db:
            db.executemany(
                "INSERT OR IGNORE INTO approvals (run_id, step_id, record_id, seq, field, status, ai_text, context)"
                " VALUES (?,?,?,?,?,'pending',?,?)",
                [(run_id, step_id, rid, seq, field, mask(text),
                  json.dumps(mask_obj(ctx), ensure_ascii=False, default=str))
                 for rid, seq, field, text, ctx in items])

    def approvals_page(self, run_id: str, *, step_id: str | None = None, status: str | None = None,
                       after: tuple[str, int] | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """One page of items in (step, seq) order, after the ``(step_id, seq)`` of the last item seen."""
        sql = "SELECT * FROM approvals WHERE run_id=?"
        args: list[Any] = [run_id]
        if status:
            sql += " AND status=?"
            args.append(status)
        if step_id:
            sql += " AND step_id=?"
            args.append(step_id)
        if after is not None:
            sql += " AND (step_id, seq) > (?, ?)"
            args += list(after)
        rows = self._conn().execute(sql + " ORDER BY step_id, seq LIMIT ?", [*args, limit]).fetchall()
        return [_item(r) for r in rows]

    def decided_page(self, run_id: str, *, before: tuple[float, str, str] | None = None,
                     limit: int = 50) -> list[dict[str, Any]]:
        """One page of decided items, the latest first (the audit log), before the ``(decided_at, step_id,
        record_id)`` of the last item seen: keyset paging on an index, whatever is still pending."""
        sql = "SELECT * FROM approvals WHERE run_id=? AND decided_at IS NOT NULL"
        args: list[Any] = [run_id]
        if before is not None:
            sql += " AND (decided_at, step_id, record_id) < (?, ?, ?)"
            args += list(before)
        rows = self._conn().execute(sql + " ORDER BY decided_at DESC, step_id DESC, record_id DESC LIMIT ?",
                                    [*args, limit]).fetchall()
        return [_item(r) for r in rows]

    def iter_approvals(self, run_id: str, *, step_id: str | None = None, status: str | None = None,
                       page: int = 1000) -> Iterator[dict[str, Any]]:
        """Every matching item, read a page at a time (memory bounded by the page)."""
        after: tuple[str, int] | None = None
        while rows := self.approvals_page(run_id, step_id=step_id, status=status, after=after, limit=page):
            yield from rows
            after = (rows[-1]["step_id"], rows[-1]["seq"])

    def approvals(self, run_id: str, step_id: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        return list(self.iter_approvals(run_id, step_id=step_id, status=status))

    def count_approvals(self, run_id: str, step_id: str | None = None, status: str | None = None) -> int:
        sql, args = "SELECT COUNT(*) FROM approvals WHERE run_id=?", [run_id]
        if status:
            sql, args = sql + " AND status=?", [*args, status]
        if step_id:
            sql, args = sql + " AND step_id=?", [*args, step_id]
        return int(self._conn().execute(sql, args).fetchone()[0])

    def has_pending(self, run_id: str, step_id: str | None = None) -> bool:
        sql, args = "SELECT 1 FROM approvals WHERE run_id=? AND status='pending'", [run_id]
        if step_id:
            sql, args = sql + " AND step_id=?", [*args, step_id]
        return self._conn().execute(sql + " LIMIT 1", args).fetchone() is not None

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
                out.setdefault(r["record_id"], []).append(_item(r))
        return out

    def decide(self, run_id: str, step_id: str, record_id: str, *, status: str, final_text: str | None,
               sha256: str | None, reviewer: str, reason: str | None) -> bool:
        """Record a signed decision on a pending item; False when it is not pending."""
        return bool(self.decide_many(run_id, [(step_id, record_id, status, final_text, sha256, reason)], reviewer))

    def decide_many(self, run_id: str, decisions: list[tuple[str, str, str, str | None, str | None, str | None]],
                    reviewer: str) -> int:
        """Record ``(step_id, record_id, status, final_text, sha256, reason)`` decisions on pending items in
        one transaction, each signed; returns how many were still pending (others are left alone)."""
        key = integrity.installation_key()
        done = 0
        with self.tx(self.rkey(run_id)) as db:
            for step_id, record_id, status, final_text, sha256, reason in decisions:
                row = db.execute("SELECT * FROM approvals WHERE run_id=? AND step_id=? AND record_id=? "
                                 "AND status='pending'", (run_id, step_id, record_id)).fetchone()
                if row is None:
                    continue
                decision = {**dict(row), "status": status, "final_text": final_text, "sha256": sha256,
                            "reviewer": reviewer, "decided_at": time.time(), "reason": reason}
                decision["mac"] = integrity.sign(decision, key)
                db.execute(
                    "UPDATE approvals SET status=?, final_text=?, sha256=?, reviewer=?, decided_at=?, reason=?, mac=? "
                    "WHERE run_id=? AND step_id=? AND record_id=? AND status='pending'",
                    (status, final_text, sha256, reviewer, decision["decided_at"], reason, decision["mac"],
                     run_id, step_id, record_id))
                done += 1
        return done

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
        with self.tx(self.rkey(run_id)) as db:
            db.executemany("INSERT OR REPLACE INTO ledger VALUES (?,?,?,?,?,?)",
                           [(run_id, step_id, rid, sha, status, now) for rid, sha in keys])


def _item(r: sqlite3.Row) -> dict[str, Any]:
    return {**dict(r), "context": json.loads(r["context"] or "{}")}
