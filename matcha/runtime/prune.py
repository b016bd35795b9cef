"""``matcha runs prune``: delete old runs and what only they used, so the store does not only grow.

A run waiting for approval or being executed is never deleted. With a run go its rows, items,
review items, ledger, step states, artifacts (files no other run lists), LangGraph checkpoints and
quarantine folder. Cached vectors no remaining run refers to are deleted; cached generations are
keyed by prompt, not by run, so those older than the oldest remaining run are deleted (a later run
with the same prompt pays for the call again).
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matcha.runtime.store import RunRow

if TYPE_CHECKING:
    from matcha.runtime.run import Workspace


def prune(ws: Workspace, *, older_than_days: int | None, keep: int | None, dry_run: bool = False) -> dict[str, Any]:
    from matcha.runtime.run import Run

    store = ws.store
    runs = store.list_runs(limit=1_000_000_000)  # newest first
    cutoff = time.time() - older_than_days * 86400 if older_than_days is not None else None
    chosen: list[RunRow] = []
    waiting = 0
    for i, row in enumerate(runs):
        old = (cutoff is not None and row.created_at < cutoff) or (keep is not None and i >= keep)
        if not old:
            continue
        if row.status in ("waiting_for_approval", "queued") or (row.status == "running" and Run(ws, row).active):
            waiting += 1
            continue
        chosen.append(row)
    report: dict[str, Any] = {"runs": [r.run_id for r in chosen], "kept": len(runs) - len(chosen),
                              "waiting": waiting, "cache_entries": 0, "dry_run": dry_run}
    if dry_run:
        return report
    for row in chosen:
        for path in store.delete_run(row.run_id):
            path.unlink(missing_ok=True)
        shutil.rmtree(ws.home / "runs" / row.run_id, ignore_errors=True)
    _delete_checkpoints(ws, [r.run_id for r in chosen])
    remaining = [r for r in runs if r not in chosen]
    report["cache_entries"] = _prune_cache(store._conn(), min((r.created_at for r in remaining), default=None),
                                           store.dialect)
    return report


def _delete_checkpoints(ws: Workspace, run_ids: list[str]) -> None:
    if not run_ids or (isinstance(ws.checkpoints, Path) and not ws.checkpoints.exists()):
        return
    from matcha.runtime.executor import open_checkpointer

    saver = open_checkpointer(ws.checkpoints)
    try:
        for rid in run_ids:
            saver.delete_thread(rid)
    finally:
        saver.conn.close()


def _prune_cache(db: sqlite3.Connection, oldest_kept: float | None, dialect: str = "sqlite") -> int:
    """Delete vectors no remaining row refers to and generations older than every remaining run."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("CREATE TEMP TABLE IF NOT EXISTS used (key TEXT PRIMARY KEY) WITHOUT ROWID")
        db.execute("DELETE FROM used")
        # vector references live in the rows of embed steps: {"model", "dim", "key": "emb:..."}
        if dialect == "sqlite":
            db.execute("INSERT OR IGNORE INTO used SELECT t.value FROM parts, json_tree(parts.data) AS t "
                       "WHERE parts.data LIKE '%emb:%' AND t.key = 'key' AND t.value LIKE 'emb:%'")
        else:  # the same references found in the parts' JSON text
            db.execute("INSERT OR IGNORE INTO used SELECT m[1] FROM parts, "
                       "regexp_matches(parts.data, '\"key\": *\"(emb:[^\"]+)\"', 'g') AS m "
                       "WHERE parts.data LIKE '%emb:%'")
        n = db.execute("DELETE FROM cache WHERE key LIKE 'emb:%' AND key NOT IN (SELECT key FROM used)").rowcount
        n += db.execute("DELETE FROM vector_keys WHERE key NOT IN (SELECT key FROM used)").rowcount
        # a block goes with its last vector (one that still holds a used vector stays whole)
        db.execute("DELETE FROM vector_blocks WHERE id NOT IN (SELECT DISTINCT block FROM vector_keys)")
        if oldest_kept is None:
            n += db.execute("DELETE FROM cache WHERE key NOT LIKE 'emb:%'").rowcount
        else:
            n += db.execute("DELETE FROM cache WHERE key NOT LIKE 'emb:%' AND created_at < ?", (oldest_kept,)).rowcount
        db.execute("DROP TABLE used")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return int(n)
