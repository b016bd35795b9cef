"""Reading the vectors an ``embed`` step stored, for the steps that work on vectors.

An ``embed`` step gives each record a small reference (``{"model", "dim", "key", "at"}``); the
float32 vector itself lives once in the run store, in the block of the model call that made it
(``at``: block and row). :func:`vectors_of` turns a batch of records into a matrix with one read
per block, usually one per batch.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from matcha.steps.base import Record, StepContext


def is_vector_ref(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("key"), str) and isinstance(value.get("dim"), int)


def vectors_of(ctx: StepContext, batch: list[Record], field: str
               ) -> tuple[list[Record], np.ndarray, list[tuple[Record, str]]]:
    """``(records with a vector, their vectors as an (n, dim) float32 matrix, records without one + why)``."""
    ok, matrix, bad = vectors_at(ctx, [rec.get(field) for rec in batch], field)
    return [batch[i] for i in ok], matrix, [(batch[i], why) for i, why in bad]


def vectors_at(ctx: StepContext, refs: list[Any], field: str) -> tuple[list[int], np.ndarray, list[tuple[int, str]]]:
    """For a column of vector references: ``(indices with a vector, their vectors as an (n, dim)
    float32 matrix, indices without one + why)``."""
    ok: list[int] = []
    keys: list[tuple[str, Any]] = []
    bad: list[tuple[int, str]] = []
    for i, ref in enumerate(refs):
        if (type(ref) is dict and type(ref.get("key")) is str and type(ref.get("dim")) is int) or \
                (ref is not None and is_vector_ref(ref)):  # (the first test, inline, is the usual case)
            ok.append(i)
            keys.append((ref["key"], ref.get("at")))
        else:
            bad.append((i, f"field '{field}' holds no vector; name the field an `embed` step wrote"))
    whole = ctx.store.vectors_matrix(keys) if keys else None
    if whole is not None:  # the usual case: every vector where its reference says, one size
        return ok, whole, bad
    found = ctx.store.vectors_for(keys) if keys else []
    keep: list[int] = []
    rows: list[np.ndarray] = []
    for i, row in zip(ok, found, strict=True):
        if row is None:
            bad.append((i, f"the vector in field '{field}' is no longer in the run store (pruned?); "
                           "run the embed step again"))
            continue
        keep.append(i)
        rows.append(row)
    if not rows:
        return keep, np.zeros((0, 0), dtype=np.float32), bad
    sizes = Counter(len(r) for r in rows)
    if len(sizes) > 1:  # vectors of two models in one field: keep the most common size, quarantine the rest
        dim = sizes.most_common(1)[0][0]
        for i, row in zip(keep, rows, strict=True):
            if len(row) != dim:
                bad.append((i, f"the vector in field '{field}' has {len(row)} dimensions where the others have "
                               f"{dim}; embed every record of this field with the same model"))
        pairs = [(i, row) for i, row in zip(keep, rows, strict=True) if len(row) == dim]
        keep, rows = [p[0] for p in pairs], [p[1] for p in pairs]
    bad.sort()
    return keep, np.vstack(rows), bad
