"""Cheap per-record work for benchmarks/orchestration_scale.py (used by the pipeline and the plain loop)."""

from __future__ import annotations

from typing import Any

Record = dict[str, Any]


def parse(batch: list[Record]) -> list[Record]:
    for r in batch:
        r["orders"] = int(r["orders"])
        r["revenue"] = float(r["revenue"])
    return batch


def tier(batch: list[Record]) -> list[Record]:
    for r in batch:
        r["tier"] = "gold" if r["revenue"] > 500 else "silver" if r["revenue"] > 100 else "bronze"
    return batch


def tidy(batch: list[Record]) -> list[Record]:
    for r in batch:
        r["text"] = r["text"].strip().lower()
        r.pop("email", None)
    return batch
