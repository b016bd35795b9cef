"""The fastembed provider with the REAL offline bundle (all-MiniLM-L6-v2, ONNX int8)."""

# Fixtures come from model_fixtures (see there why not conftest): arguments re-use their names.
# ruff: noqa: F811

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from model_fixtures import tmp_cache  # noqa: F401

from matcha.errors import ModelUnavailable
from matcha.ml.fewshot import builtin_sentiment_examples
from matcha.models import bundle
from matcha.models.base import PROVIDERS
from matcha.models.fastembed_provider import FastEmbedConfig, FastEmbedProvider

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def embedder() -> Iterator[FastEmbedProvider]:
    provider = FastEmbedProvider("embed", FastEmbedConfig())
    provider.load()
    yield provider
    provider.close()


def test_registered() -> None:
    assert PROVIDERS.get("fastembed") is FastEmbedProvider
    assert FastEmbedProvider.capabilities == frozenset({"embed"})


def test_vectors_are_384d_normalised_float32(embedder: FastEmbedProvider) -> None:
    vectors = embedder.embed(["I love this product", "Livraison rapide, merci !"])
    assert embedder.dim == 384
    assert vectors.shape == (2, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_deterministic(embedder: FastEmbedProvider) -> None:
    texts = ["The parcel arrived late", "Great value for money"]
    np.testing.assert_allclose(embedder.embed(texts), embedder.embed(texts), atol=1e-6)


def test_similar_sentences_are_closer(embedder: FastEmbedProvider) -> None:
    a, b, c = embedder.embed(["I love this product", "This product is great", "Terrible delivery, awful"])
    assert float(a @ b) > float(a @ c) + 0.3


def test_empty_input(embedder: FastEmbedProvider) -> None:
    assert embedder.embed([]).shape == (0, 384)


def mixed_texts() -> list[str]:
    """Real sentences of many lengths, up to a page far over the model's 512 tokens."""
    sentences = [t for t, _ in builtin_sentiment_examples()]
    texts = [" ".join(sentences[i:i + 1 + i % 9]) for i in range(0, 300, 7)]
    return [*texts, " ".join(sentences[300:700]), "", "ok", "ok"]


def test_same_vectors_as_fastembed_batching_and_unbatched_calls(embedder: FastEmbedProvider) -> None:
    from fastembed import TextEmbedding

    raw = TextEmbedding(bundle.EMBED_MODEL, specific_model_path=str(bundle.default_embed_model_dir()))
    texts = mixed_texts()
    ours = embedder.embed(texts)
    np.testing.assert_allclose(ours, np.stack(list(raw.embed(texts))), atol=1e-5)  # fastembed's batch 256
    np.testing.assert_allclose(ours, np.stack([next(iter(raw.embed([t]))) for t in texts]), atol=1e-5)


def test_calls_are_grouped_by_length_within_the_token_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = FastEmbedProvider("embed", FastEmbedConfig(batch_size=7, max_batch_tokens=600))
    provider.load()
    seen: list[list[str]] = []
    real = provider._model.embed

    def spy(texts: Any, **kwargs: Any) -> Any:
        assert kwargs["batch_size"] == len(texts)
        seen.append(texts)
        return real(texts, **kwargs)

    monkeypatch.setattr(provider._model, "embed", spy)
    texts = mixed_texts()
    assert provider.embed(texts).shape == (len(texts), 384)
    tokenizer = provider._model.model.tokenizer  # fastembed's own: truncates at 512 and pads
    for batch in seen:
        padded = len(tokenizer.encode_batch(batch)[0].ids)
        assert len(batch) <= 7 and (len(batch) * padded <= 600 or len(batch) == 1), (len(batch), padded)
    assert sorted(t for batch in seen for t in batch) == sorted(texts)
    provider.close()


def test_token_lengths_are_the_models_own(embedder: FastEmbedProvider) -> None:
    texts = mixed_texts()
    counted = [len(e.ids) for e in embedder._counter.encode_batch(texts)]  # truncated at 512
    assert embedder.token_lengths(texts) == counted
    assert max(counted) == 512 and embedder.token_lengths(["ok"]) == [3]  # [CLS] ok [SEP]
    # Over 8,192 characters only a prefix is counted, and a text counts as full length: an
    # overestimate at worst (this one is a single unknown word: 3 tokens).
    assert embedder.token_lengths(["é" * 20_000, "word " * 3_000]) == [512, 512]


def test_fingerprint_ignores_runtime_knobs() -> None:
    base = FastEmbedProvider("e", FastEmbedConfig()).fingerprint
    assert FastEmbedProvider("e", FastEmbedConfig(batch_size=8, threads=1, max_batch_tokens=9)).fingerprint == base
    assert FastEmbedProvider("e", FastEmbedConfig(model="BAAI/bge-small-en-v1.5")).fingerprint != base


def test_vectors_match_raw_fastembed(embedder: FastEmbedProvider) -> None:
    # Speed against raw fastembed is measured by benchmarks/embed_throughput.py (not a timed test: a shared
    # CI machine makes timings noise). Here: what the provider returns is what the raw library computes.
    import numpy as np
    from fastembed import TextEmbedding

    raw = TextEmbedding(bundle.EMBED_MODEL, specific_model_path=str(bundle.default_embed_model_dir()))
    texts = [f"short review number {i}: the delivery was {'fast' if i % 2 else 'slow'}" for i in range(128)]
    ours = np.asarray(embedder.embed(texts), dtype=np.float32)
    theirs = np.asarray(list(raw.embed(texts, batch_size=256)), dtype=np.float32)
    assert ours.shape == theirs.shape
    theirs /= np.linalg.norm(theirs, axis=1, keepdims=True)
    ours_n = ours / np.linalg.norm(ours, axis=1, keepdims=True)
    # The quantized graph varies very slightly with a text's batchmates (see docs/models.md).
    assert float((ours_n * theirs).sum(axis=1).min()) > 0.99


def test_corrupted_bundle_is_rejected(tmp_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    onnx, tokenizer_zip = bundle._embed_sources()
    bad = tmp_path / "model.onnx"
    shutil.copyfile(onnx, bad)
    with bad.open("r+b") as fh:
        fh.write(b"corrupt")
    monkeypatch.setattr(bundle, "_embed_sources", lambda download=False: (bad, tokenizer_zip))
    with pytest.raises(ModelUnavailable, match="sha256"):
        FastEmbedProvider("embed", FastEmbedConfig()).load()


def test_missing_path() -> None:
    provider = FastEmbedProvider("embed", FastEmbedConfig(path="/nonexistent/model-dir"))
    with pytest.raises(ModelUnavailable, match="does not exist") as info:
        provider.embed(["x"])
    assert "path" in info.value.hint


def test_local_path_loads(embedder: FastEmbedProvider) -> None:
    provider = FastEmbedProvider("embed", FastEmbedConfig(path=str(bundle.default_embed_model_dir())))
    np.testing.assert_allclose(provider.embed(["hello"]), embedder.embed(["hello"]), atol=1e-6)
    provider.close()


def test_unknown_model_name() -> None:
    provider = FastEmbedProvider("embed", FastEmbedConfig(model="no-such/model"))
    with pytest.raises(ModelUnavailable, match="no-such/model") as info:
        provider.load()
    assert "list_supported_models" in info.value.hint
