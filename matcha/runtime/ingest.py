"""Reading records into a run: ids assigned, bad rows quarantined, duplicates set aside."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from matcha.connectors.base import SourceRow
from matcha.runtime.store import RunStore
from matcha.spec.graph import SOURCE

Record = dict[str, Any]
CHUNK = 1000


def ingest(store: RunStore, run_id: str, rows: Iterable[SourceRow], id_field: str | None,
           limit: int | None = None, progress: Callable[[int], None] | None = None) -> None:
    """Write source rows as the output of the source node. Idempotent: re-ingesting after a crash
    rewrites the same rows (ids and order are derived from the source)."""
    seen: set[str] = set()
    buf: list[tuple[str, int, str, str | None, Record]] = []
    n = 0
    for seq, row in enumerate(rows):
        if limit is not None and seq >= limit:
            break
        buf.append(_row(seq, row, id_field, seen))
        n += 1
        if len(buf) >= CHUNK:
            store.write_records(run_id, SOURCE, buf)
            buf = []
            if progress:
                progress(n)
    if buf:
        store.write_records(run_id, SOURCE, buf)
    if progress:
        progress(n)


def _row(seq: int, row: SourceRow, id_field: str | None, seen: set[str]) -> tuple[str, int, str, str | None, Record]:
    fallback_id = f"line-{row.line}"
    if row.error is not None or row.data is None:
        return fallback_id, seq, "quarantined", f"line {row.line}: {row.error}", {}
    rec = dict(row.data)
    if id_field is None:
        rid = f"{row.line}"
    else:
        value = rec.get(id_field)
        if value is None or str(value).strip() == "":
            return (fallback_id, seq, "quarantined",
                    f"line {row.line}: no value in id field '{id_field}' (set source.id_field, or null to number rows)",
                    rec)
        rid = str(value).strip()
    if rid in seen:
        return (f"{fallback_id}-dup", seq, "quarantined", f"line {row.line}: duplicate id '{rid}'", rec)
    seen.add(rid)
    rec["id"] = rid
    return rid, seq, "out", None, rec


def records_as_rows(records: Iterable[Record]) -> Iterable[SourceRow]:
    for i, rec in enumerate(records, start=1):
        if isinstance(rec, dict):
            yield SourceRow(line=i, data=rec)
        else:
            yield SourceRow(line=i, error=f"not a mapping: {type(rec).__name__}")
