"""On PostgreSQL the writers of different runs do not wait for each other; those of one run do (a
real server: tests/postgres.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from matcha.runtime.store import RunStore

pytestmark = pytest.mark.integration


def test_writers_of_different_runs_go_at_once_and_of_one_run_in_turn(pg_url: str, tmp_path: Path) -> None:
    mine, other = RunStore(pg_url), RunStore(pg_url)
    for rid in ("r1", "r2"):
        mine.create_run(rid, "p", "p.yaml", str(tmp_path), "", {})
    r1 = mine.rkey("r1")
    try:
        with mine.tx(r1):  # a writer of r1 holds its lock
            r2_done, r1_done = threading.Event(), threading.Event()
            threading.Thread(target=lambda: (other.set_status("r2", "queued"), r2_done.set()), daemon=True).start()
            assert r2_done.wait(10), "a writer of another run waited"
            threading.Thread(target=lambda: (other.set_status("r1", "queued"), r1_done.set()), daemon=True).start()
            assert not r1_done.wait(1), "two writers of one run at once"
        assert r1_done.wait(10)
        assert [other.get_run(r).status for r in ("r1", "r2")] == ["queued", "queued"]  # type: ignore[union-attr]
    finally:
        mine.close()
        other.close()
