"""``check_models``: one row per model, errors turned into an error and a hint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pytest

from matcha.errors import ModelError, ModelUnavailable
from matcha.models.base import Embedder, Generator, ProviderConfig
from matcha.models.check import check_models
from matcha.models.fastembed_provider import FastEmbedConfig, FastEmbedProvider


class FakeConfig(ProviderConfig):
    provider: Literal["fake"] = "fake"
    model: str = "fake-1"
    fail: Literal["", "load", "call"] = ""


class FakeEmbedder(Embedder):
    Config = FakeConfig
    capabilities = frozenset({"embed"})

    def load(self) -> None:
        if self.config.fail == "load":
            raise ModelUnavailable("The offline bundle is missing", "run `matcha models fetch`")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.ones((len(texts), 3), dtype=np.float32)


class FakeGenerator(Generator):
    Config = FakeConfig
    capabilities = frozenset({"generate"})

    async def agenerate(self, prompt: str, **kwargs: Any) -> str:  # type: ignore[override]
        if self.config.fail == "call":
            raise ModelError("HTTP 500: out of memory")
        assert kwargs["max_tokens"] == 4
        return "Hi"


@pytest.mark.unit
def test_rows_for_each_model() -> None:
    rows = check_models(
        {
            "ok-embed": FakeEmbedder("ok-embed", FakeConfig()),
            "no-bundle": FakeEmbedder("no-bundle", FakeConfig(fail="load")),
            "ok-gen": FakeGenerator("ok-gen", FakeConfig()),
            "broken-gen": FakeGenerator("broken-gen", FakeConfig(fail="call")),
        }
    )
    by_name = {row.name: row for row in rows}
    assert [row.name for row in rows] == ["ok-embed", "no-bundle", "ok-gen", "broken-gen"]
    assert by_name["ok-embed"].ok and by_name["ok-embed"].call_seconds is not None
    assert by_name["ok-gen"].ok and by_name["ok-gen"].model == "fake-1" and by_name["ok-gen"].provider == "fake"
    missing = by_name["no-bundle"]
    assert not missing.ok and missing.load_seconds is None
    assert missing.error == "The offline bundle is missing"
    assert missing.hint == "run `matcha models fetch`"
    broken = by_name["broken-gen"]
    assert not broken.ok and broken.load_seconds is not None
    assert broken.error == "HTTP 500: out of memory" and broken.hint


@pytest.mark.unit
def test_capability_can_be_chosen() -> None:
    [row] = check_models({"g": FakeGenerator("g", FakeConfig())}, uses={"g": "embed"})
    assert not row.ok and "cannot embed" in row.error


@pytest.mark.slow
def test_real_offline_embedder() -> None:
    [row] = check_models({"embed": FastEmbedProvider("embed", FastEmbedConfig())})
    assert row.ok, row.error
    assert row.provider == "fastembed" and row.model == "sentence-transformers/all-MiniLM-L6-v2"
