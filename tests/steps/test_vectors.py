"""Reading stored vectors for the steps that work on them: a record whose vector cannot be used is
quarantined with its reason, never dropped and never allowed to break the batch."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from matcha.steps.vectors import vectors_of

pytestmark = pytest.mark.unit


class Cache:
    def __init__(self, blobs: dict[str, bytes]):
        self.blobs = blobs

    def vectors_for(self, refs: list[tuple[str, Any]]) -> list[np.ndarray | None]:
        return [np.frombuffer(self.blobs[k], np.float32) if k in self.blobs else None for k, _at in refs]

    def vectors_matrix(self, refs: list[tuple[str, Any]]) -> np.ndarray | None:
        return None  # references without a place: found one by one


class Ctx:
    def __init__(self, blobs: dict[str, bytes]):
        self.store = Cache(blobs)


def ref(key: str, dim: int) -> dict[str, Any]:
    return {"model": "m", "dim": dim, "key": key}


def test_mixed_dimensions_keep_the_common_size_and_quarantine_the_rest() -> None:
    blobs = {"a": np.ones(4, np.float32).tobytes(), "b": np.ones(4, np.float32).tobytes(),
             "c": np.ones(3, np.float32).tobytes()}
    batch = [{"id": "1", "v": ref("a", 4)}, {"id": "2", "v": ref("c", 3)}, {"id": "3", "v": ref("b", 4)},
             {"id": "4", "v": "not a vector"}, {"id": "5", "v": ref("gone", 4)}]
    ok, matrix, bad = vectors_of(Ctx(blobs), batch, "v")  # type: ignore[arg-type]
    assert [r["id"] for r in ok] == ["1", "3"]
    assert matrix.shape == (2, 4)
    reasons = {r["id"]: why for r, why in bad}
    assert set(reasons) == {"2", "4", "5"}
    assert "3 dimensions where the others have 4" in reasons["2"]
    assert "holds no vector" in reasons["4"]
    assert "no longer in the run store" in reasons["5"]
    assert len(ok) + len(bad) == len(batch)
