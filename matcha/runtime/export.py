"""Export a run's records as JSONL or CSV."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from matcha.errors import RunError


def _cell(v: Any) -> Any:
    return json.dumps(v, ensure_ascii=False, default=str) if isinstance(v, dict | list) else v


def export_records(records: Iterable[dict[str, Any]], fmt: str, output: Path | None) -> int:
    """Write records to ``output`` (stdout when None). CSV columns are the union of all fields."""
    if fmt not in ("jsonl", "csv"):
        raise RunError(f"unknown export format '{fmt}'. Valid formats are: jsonl, csv")
    fh: TextIO = open(output, "w", encoding="utf-8", newline="") if output else sys.stdout  # noqa: SIM115
    n = 0
    try:
        if fmt == "jsonl":
            for rec in records:
                fh.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
                n += 1
        else:
            # the union of columns is only known at the end: buffer rows (exports are for inspection)
            rows = list(records)
            cols: dict[str, None] = {"id": None}
            for rec in rows:
                cols.update(dict.fromkeys(rec))
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=list(cols))
            w.writeheader()
            for rec in rows:
                w.writerow({k: _cell(v) for k, v in rec.items()})
            fh.write(buf.getvalue())
            n = len(rows)
    finally:
        if output:
            fh.close()
    return n
