"""The run store keeps one part per step and batch: reading it back is exact whatever the batch shapes."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import store_location

from matcha.runtime.store import SOURCE_STEP, RunStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    s = RunStore(store_location(tmp_path / "runs.db"))
    s.create_run("r", "t", "p.yaml", str(tmp_path), "", {})
    yield s
    s.close()


def source(store: RunStore, n: int, chunk: int = 1000) -> None:
    for lo in range(0, n, chunk):
        store.add_items("r", SOURCE_STEP, [(f"c{i}", i, "out", None, {"n": i, "text": f"t{i}"})
                                           for i in range(lo, min(n, lo + chunk))])


def read(store: RunStore, lineage: list[str], needs: list[str], size: int = 1000, **kw: object
         ) -> list[list[tuple[str, int, dict[str, object]]]]:
    return list(store.iter_input("r", lineage, needs, size, **kw))  # type: ignore[arg-type]


def test_a_sparse_input_still_comes_in_full_batches(store: RunStore) -> None:
    source(store, 10_000)
    keep = [i for i in range(10_000) if i % 7 == 0]
    for lo in range(0, 10_000, 2000):
        store.write_rows("r", "f", [(i, "out" if i % 7 == 0 else "dropped", None if i % 7 == 0 else "no", {}, None,
                                     None) for i in range(lo, lo + 2000)])
    batches = read(store, [SOURCE_STEP, "f"], ["f"], size=300)
    assert [len(b) for b in batches] == [300] * (len(keep) // 300) + [len(keep) % 300]
    assert [seq for b in batches for _rid, seq, _rec in b] == keep
    assert batches[0][1] == ("c7", 7, {"n": 7, "text": "t7", "id": "c7"})
    assert store.count_input("r", ["f"]) == len(keep)
    counts = store.step_counts("r", "f", [SOURCE_STEP])
    assert (counts.received, counts.out, counts.dropped, counts.pending) == (10_000, len(keep), 10_000 - len(keep), 0)


def test_parts_whose_ranges_interleave_read_in_seq_order(store: RunStore) -> None:
    """A step written in two passes (approval: set-aside records first, decided ones later)."""
    source(store, 6)
    store.write_rows("r", "a", [(1, "quarantined", "bad", {"n": 1}, None, None), (4, "dropped", "no", {}, None, None)])
    store.write_rows("r", "a", [(0, "out", None, {"x": 0}, None, None), (2, "out", None, {"x": 2}, ["text"], None),
                                (3, "out", None, {}, None, None), (5, "out", None, {"x": 5}, None, None)])
    got = [(seq, rec) for b in read(store, [SOURCE_STEP, "a"], ["a"], size=2) for _rid, seq, rec in b]
    assert [seq for seq, _ in got] == [0, 2, 3, 5]
    assert got[1][1] == {"n": 2, "x": 2, "id": "c2"}  # "text" removed by the step
    assert store.done_seqs("r", "a", 0, 5) == {0, 1, 2, 3, 4, 5}
    assert store.done_seqs("r", "a", 2, 3) == {2, 3}
    assert [q["id"] for q in store.quarantined("r")] == ["c1"]
    # a resumed step skips what it wrote, whichever part holds it
    store.write_rows("r", "b", [(2, "out", None, {}, None, None)])
    left = [seq for b in read(store, [SOURCE_STEP, "a"], ["a"], skip_step="b") for _rid, seq, _rec in b]
    assert left == [0, 3, 5]


def test_a_pass_that_names_its_fields_skips_the_steps_that_wrote_none_of_them(store: RunStore) -> None:
    source(store, 3)
    store.write_rows("r", "e", [(i, "out", None, {"vec": [i]}, None, None) for i in range(3)])
    whole = read(store, [SOURCE_STEP, "e"], ["e"])[0]
    only = read(store, [SOURCE_STEP, "e"], ["e"], fields=["vec"])[0]
    assert whole[2][2] == {"n": 2, "text": "t2", "vec": [2], "id": "c2"}
    assert only[2][2] == {"vec": [2], "id": "c2"}


@pytest.mark.sqlite_only
def test_a_store_written_before_parts_is_moved_to_parts_once(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    RunStore(path).close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE parts")
    db.execute("CREATE TABLE rows (run INTEGER, step INTEGER, seq INTEGER, status TEXT, reason TEXT, data TEXT, "
               "gone TEXT, link INTEGER, PRIMARY KEY (run, step, seq)) WITHOUT ROWID")
    db.execute("INSERT INTO runs (run_id, name, status, params) VALUES ('old', 'o', 'succeeded', '{}')")
    db.executemany("INSERT INTO keys VALUES (?,?,?,?)", [("run", 0, "old", 1), ("step", 1, SOURCE_STEP, 1),
                                                         ("step", 1, "s", 2)])
    for i in range(5):
        db.execute("INSERT INTO items VALUES (1, ?, ?, 0)", (i, f"o{i}"))
        db.execute("INSERT INTO rows VALUES (1, 1, ?, 'out', NULL, ?, NULL, NULL)", (i, json.dumps({"v": i})))
        db.execute("INSERT INTO rows VALUES (1, 2, ?, ?, ?, ?, ?, NULL)",
                   (i, "out" if i else "dropped", None if i else "no", json.dumps({"w": i * 10}),
                    json.dumps(["v"]) if i == 4 else None))
    db.commit()
    db.close()
    store = RunStore(path)
    try:
        recs = [rec for b in store.iter_input("old", [SOURCE_STEP, "s"], ["s"], 10) for _r, _s, rec in b]
        assert recs[0] == {"v": 1, "w": 10, "id": "o1"} and recs[-1] == {"w": 40, "id": "o4"}
        counts = store.step_counts("old", "s", [SOURCE_STEP])
        assert (counts.out, counts.dropped, counts.pending) == (4, 1, 0)
        assert not store._conn().execute("SELECT 1 FROM sqlite_master WHERE name='rows'").fetchone()
    finally:
        store.close()


_V = ["shared"]


@pytest.mark.parametrize(("before", "after", "changed", "gone"), [
    ({"id": "a", "x": 1, "v": _V}, {"id": "a", "x": 1, "v": _V}, {}, []),  # nothing changed
    ({"id": "a", "x": 1, "v": _V}, {"id": "a", "x": 2, "v": _V}, {"x": 2}, []),  # replaced
    ({"id": "a", "x": 1}, {"id": "a", "x": 1, "y": 3}, {"y": 3}, []),  # added at the end
    ({"id": "a", "x": 1, "y": 2}, {"id": "a", "y": 2}, {}, ["x"]),  # removed
    ({"id": "a", "x": 1, "y": 2}, {"id": "a", "y": 2, "x": 1}, {}, []),  # same fields, another order
    ({"id": "a", "x": 1, "y": 2}, {"id": "a", "z": 9, "y": 2}, {"z": 9}, ["x"]),  # one out, one in
    (None, {"id": "a", "x": 1}, {"x": 1}, []),  # a record the step made
])
def test_changes_are_what_the_step_replaced_added_or_removed(before: dict[str, object] | None,
                                                             after: dict[str, object], changed: dict[str, object],
                                                             gone: list[str]) -> None:
    from matcha.runtime.batches import changes

    # values compared by identity: a copy of the record before holds the same objects
    assert changes(dict(before) if before else None, after) == (changed, gone)


def test_vectors_are_read_by_block_and_found_by_key_when_their_block_is_gone(store: RunStore) -> None:
    import numpy as np

    first = store.put_vectors(["a", "b"], np.array([[1, 0], [0, 1]], dtype=np.float32))
    again = store.put_vectors(["b", "c"], np.array([[0, 1], [1, 1]], dtype=np.float32))  # "b" embedded twice
    got = store.vectors_for([("a", first["a"]), ("b", first["b"]), ("c", None), ("nope", None)])
    assert [g.tolist() if g is not None else None for g in got] == [[1, 0], [0, 1], [1, 1], None]
    # a prune that dropped the first block (no key pointed to it any more) loses nothing still indexed
    store._conn().execute("DELETE FROM vector_keys WHERE key='a'")
    store._conn().execute("DELETE FROM vector_blocks WHERE id=?", (first["a"][0],))
    store.__dict__.pop("_blocks", None)
    got = store.vectors_for([("b", first["b"]), ("a", first["a"])])
    assert got[0] is not None and got[0].tolist() == [0, 1] and got[1] is None
    assert again["b"][0] != first["b"][0]


def test_source_ids_are_kept_per_chunk_until_a_record_is_looked_up_by_id(store: RunStore) -> None:
    from matcha.errors import RunError

    source(store, 5000, chunk=2000)
    db = store._conn()
    count = lambda table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: E731
    assert (count("items"), count("id_chunks")) == (0, 3)  # one row per chunk, none per record
    assert [rid for b in read(store, [SOURCE_STEP], [SOURCE_STEP], size=1500) for rid, _s, _r in b] == \
        [f"c{i}" for i in range(5000)]
    assert store.seqs_of("r", ["c0", "c4999", "nope"]) == {"c0": 0, "c4999": 4999}
    assert (count("items"), count("id_chunks")) == (5000, 0)  # moved once, now indexed by id
    assert store.make_items("r", "agg", ["s1", "s2"]) == {"s1": 5000, "s2": 5001}
    assert [rid for b in read(store, [SOURCE_STEP], [SOURCE_STEP], size=1500) for rid, _s, _r in b][1999:2001] == \
        ["c1999", "c2000"]
    with pytest.raises(RunError, match="another record of this run already has"):
        store.make_items("r", "agg", ["c17"])


def test_a_made_id_is_checked_against_source_ids_not_yet_indexed(store: RunStore) -> None:
    from matcha.errors import RunError

    source(store, 3000, chunk=2000)
    with pytest.raises(RunError, match="another record of this run already has"):
        store.make_items("r", "agg", ["s1", "c2999"])
    assert store.make_items("r", "agg", ["s1", "s2"]) == {"s1": 3000, "s2": 3001}
    assert store._conn().execute("SELECT COUNT(*) FROM id_chunks").fetchone()[0] == 2  # still not indexed


def test_columns_read_what_records_read_with_typed_and_removed_fields(store: RunStore) -> None:
    """A column pass gives, field by field, what a record pass gives (None where a record has no
    value): numbers stored as machine values come back as the same Python values, NaN included."""
    source(store, 3000)
    nan = float("nan")
    for lo in range(0, 3000, 700):  # parts that do not line up with the source's
        hi = min(3000, lo + 700)
        store.write_rows("r", "s", [(i, "out" if i % 9 else "dropped", None if i % 9 else "no",
                                     {"score": nan if i == 5 else i / 7, "big": i * 2**40, "flag": i % 2 == 0,
                                      "tag": None if i % 4 else "x"}, ["text"] if i % 3 == 0 else None, None)
                                    for i in range(lo, hi)])
    lineage = [SOURCE_STEP, "s"]
    fields = ["n", "text", "score", "big", "flag", "tag", "absent"]
    records = [rec for batch in read(store, lineage, ["s"], size=512) for _rid, _seq, rec in batch]
    got: dict[str, list[object]] = {f: [] for f in fields}
    ids: list[str] = []
    for _seqs, values, batch_ids in store.iter_columns("r", lineage, ["s"], 512, fields):
        for f in fields:
            got[f] += values[f]
        ids += batch_ids()
    assert ids == [r["id"] for r in records]
    for f in fields:
        want = [r.get(f) for r in records]
        assert json.dumps(got[f]) == json.dumps(want), f
        assert [type(v) for v in got[f]] == [type(v) for v in want], f
    raw = store._conn().execute("SELECT data FROM parts WHERE step != 1 LIMIT 1").fetchone()[0]
    assert '"f8:' in raw and '"b1:' in raw and '"i8:' in raw  # the number columns were stored as machine values


def test_a_matrix_of_vectors_reads_a_few_rows_alone_and_many_by_block(store: RunStore) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    big, small = rng.random((600, 8), dtype=np.float32), rng.random((5, 8), dtype=np.float32)
    at_big = store.put_vectors([f"b{i}" for i in range(600)], big)
    at_small = store.put_vectors([f"s{i}" for i in range(5)], small)
    store.__dict__.pop("_blocks", None)
    for picks in ([3, 599, 42], list(range(0, 600, 2))):  # a few rows (read alone), then half the block
        refs = [(f"b{i}", at_big[f"b{i}"]) for i in picks] + [("s4", at_small["s4"])]
        got = store.vectors_matrix(refs)
        assert got is not None and np.array_equal(got, np.vstack([big[picks], small[[4]]]))
    assert store.vectors_matrix([("b1", at_big["b1"]), ("x", None)]) is None  # one without a place
    assert store.vectors_matrix([("b1", (at_big["b1"][0], 600))]) is None  # a row past the block
    assert store.vectors_matrix([("b1", (999_999, 0))]) is None  # a block gone
