"""The in-process llama.cpp provider with the REAL Gemma 3 270M bundle (a base model)."""

# Fixtures come from model_fixtures (see there why not conftest): arguments re-use their names.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from model_fixtures import gemma_path, sentiment_schema  # noqa: F401

from matcha.errors import ModelUnavailable
from matcha.models import bundle
from matcha.models.base import PROVIDERS
from matcha.models.llamacpp_provider import LlamaCppConfig, LlamaCppProvider


@pytest.fixture(scope="module")
def gemma(gemma_path: Path) -> Iterator[LlamaCppProvider]:
    provider = LlamaCppProvider("local", LlamaCppConfig(max_tokens=24))
    provider.load()
    yield provider
    provider.close()


@pytest.mark.unit
def test_registered_and_cheap_to_build() -> None:
    assert PROVIDERS.get("llamacpp") is LlamaCppProvider
    provider = LlamaCppProvider("local", LlamaCppConfig())
    assert provider._llm is None  # nothing loaded until first use
    assert provider.model_id == bundle.GGUF_NAME


@pytest.mark.unit
def test_missing_package_hint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(ModelUnavailable) as info:
        LlamaCppProvider("local", LlamaCppConfig(path=str(tmp_path / "x.gguf"))).load()
    assert info.value.hint == "CMAKE_ARGS=\"-DGGML_NATIVE=OFF\" pip install 'matcha[local]'"


@pytest.mark.unit
def test_missing_file(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    with pytest.raises(ModelUnavailable, match="does not exist"):
        LlamaCppProvider("local", LlamaCppConfig(path=str(tmp_path / "missing.gguf"))).load()


@pytest.mark.unit
def test_not_a_gguf(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelUnavailable, match="could not load"):
        LlamaCppProvider("local", LlamaCppConfig(path=str(junk))).load()


@pytest.mark.slow
def test_text_completion(gemma: LlamaCppProvider) -> None:
    text = asyncio.run(gemma.agenerate("The capital of France is", max_tokens=12))
    assert text.strip()


@pytest.mark.slow
def test_deterministic_at_temperature_zero(gemma: LlamaCppProvider) -> None:
    prompt = "Three colours of the rainbow are"
    first = asyncio.run(gemma.agenerate(prompt, max_tokens=10))
    assert asyncio.run(gemma.agenerate(prompt, max_tokens=10)) == first


@pytest.mark.slow
def test_json_schema_output(gemma: LlamaCppProvider, sentiment_schema: dict[str, Any]) -> None:
    prompt = "Review: I love this product, it works perfectly.\nSentiment of the review:"
    text = asyncio.run(gemma.agenerate(prompt, schema=sentiment_schema, max_tokens=24))
    assert json.loads(text)["label"] in {"positive", "negative"}


@pytest.mark.slow
def test_concurrent_calls_are_serialised(gemma: LlamaCppProvider, sentiment_schema: dict[str, Any]) -> None:
    async def many() -> list[str]:
        prompts = [f"Review {i}: {'great' if i % 2 else 'awful'} product.\nSentiment:" for i in range(3)]
        return await asyncio.gather(*(gemma.agenerate(p, schema=sentiment_schema) for p in prompts))

    for text in asyncio.run(many()):
        assert json.loads(text)["label"] in {"positive", "negative"}


@pytest.mark.slow
def test_chat_mode_json_schema(gemma_path: Path, sentiment_schema: dict[str, Any]) -> None:
    provider = LlamaCppProvider("chat", LlamaCppConfig(mode="chat", max_tokens=24))
    try:
        text = asyncio.run(provider.agenerate("I love it. Sentiment?", schema=sentiment_schema))
    finally:
        provider.close()
    assert json.loads(text)["label"] in {"positive", "negative"}
