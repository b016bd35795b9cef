"""The offline multilingual default embedder (USE multilingual v3, ONNX) against the real model."""

# ruff: noqa: F811
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from model_fixtures import tmp_cache  # noqa: F401

from matcha.errors import ModelUnavailable
from matcha.ml.fewshot import builtin_sentiment_examples
from matcha.models import bundle
from matcha.models.onnx_provider import OnnxEmbedProvider

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def use() -> OnnxEmbedProvider:
    provider = OnnxEmbedProvider("default-embedder", OnnxEmbedProvider.Config())
    provider.load()
    return provider


def test_vectors_are_512_d_unit_rows(use: OnnxEmbedProvider) -> None:
    v = use.embed(["I love this product", "", "Livraison très rapide 👍"])
    assert v.shape == (3, 512) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert use.embed([]).shape == (0, 512)


def test_french_and_english_share_one_space(use: OnnxEmbedProvider) -> None:
    en, fr, fr_neg, en_neg = use.embed(["I love this product", "J'adore ce produit",
                                        "Livraison horrible, je suis furieux", "Terrible delivery, I am furious"])
    assert en @ fr > 0.85  # a translation is a near neighbour
    assert en @ fr > en @ fr_neg + 0.4 and fr_neg @ en_neg > 0.6


def test_batches_barely_change_vectors(use: OnnxEmbedProvider) -> None:
    """The quantized graph scales activations per call (dynamic quantization), so a text's vector
    depends very slightly on the texts embedded with it: far below anything a classifier or a
    nearest-neighbour search can see (the run store caches the first vector computed)."""
    texts = [f"message number {i}, merci !" for i in range(7)]
    small = OnnxEmbedProvider("x", OnnxEmbedProvider.Config(batch_size=2))
    cosines = np.sum(small.embed(texts) * use.embed(texts), axis=1)
    assert cosines.min() > 0.995, cosines


def mixed_texts() -> list[str]:
    """Real sentences of many lengths: single ones, paragraphs, a page (about 9,300 characters)."""
    sentences = [t for t, _ in builtin_sentiment_examples()]
    texts = [" ".join(sentences[i:i + 1 + i % 9]) for i in range(0, 600, 7)]
    return [*texts, " ".join(sentences[600:780]), "", "ok"]


def unbatched(provider: OnnxEmbedProvider, texts: list[str]) -> np.ndarray:
    rows = np.vstack([provider._run([t]) for t in texts])
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_grouped_calls_keep_the_vectors_of_unbatched_calls(use: OnnxEmbedProvider) -> None:
    """Vectors equal those of one call per text up to the per-call quantization above (no better
    is possible: the graph scales activations per call), and exactly for a text alone in its call;
    each row belongs to its own text."""
    texts = mixed_texts()
    grouped, alone = use.embed(texts), unbatched(use, texts)
    cosines = np.sum(grouped * alone, axis=1)
    assert cosines.min() > 0.995, cosines.min()
    assert (np.argmax(grouped @ alone.T, axis=1) == np.arange(len(texts))).all()  # order restored
    page = len(texts) - 3
    assert len(texts[page]) > use.config.max_batch_chars // 2  # so it is alone in its call
    np.testing.assert_allclose(grouped[page], alone[page], atol=1e-5)
    np.testing.assert_array_equal(use.embed(texts), grouped)  # deterministic


def test_very_long_texts_are_embedded_in_bounded_calls(use: OnnxEmbedProvider) -> None:
    """A 60,000-character text goes in 10,000-character pieces; the pieces' average stays close to
    the vector of the whole text in one call, which takes 500 MB (0.90 here, on a string of
    unrelated sentences; 0.90-0.99 on real 30,000-60,000-character pages)."""
    sentences = [t for t, _ in builtin_sentiment_examples()]
    long = " ".join(sentences)[:60_000]
    seen: list[int] = []
    real = use._run

    def spy(batch: list[str]) -> np.ndarray:
        seen.append(len(batch) * max(map(len, batch)))
        return real(batch)

    use._run = spy  # type: ignore[method-assign]
    try:
        short, vector = use.embed(["Livraison rapide", long])
    finally:
        del use._run
    assert max(seen) <= use.config.max_chars
    whole = unbatched(use, [long])[0]
    assert vector @ whole > 0.85, vector @ whole
    np.testing.assert_allclose(short, unbatched(use, ["Livraison rapide"])[0], atol=1e-5)


def test_fingerprint_ignores_execution_settings() -> None:
    a = OnnxEmbedProvider("a", OnnxEmbedProvider.Config())
    b = OnnxEmbedProvider("b", OnnxEmbedProvider.Config(threads=1, batch_size=8))
    assert a.fingerprint == b.fingerprint


def test_any_string_in_vectors_out_graph_loads_by_path(tmp_cache: Path) -> None:
    path = tmp_cache / "models" / bundle.USE_FILE
    provider = OnnxEmbedProvider("mine", OnnxEmbedProvider.Config(model="my-use", path=str(path)))
    assert provider.embed(["bonjour"]).shape == (1, 512)


@pytest.mark.parametrize(("config", "message"), [
    ({"model": "nope"}, "'nope' is not a bundled ONNX model"),
    ({"path": "/nonexistent/model.onnx"}, "does not exist"),
])
def test_unusable_configs_say_how_to_fix(config: dict[str, str], message: str) -> None:
    with pytest.raises(ModelUnavailable, match=message) as info:
        OnnxEmbedProvider("m", OnnxEmbedProvider.Config(**config)).load()
    assert info.value.hint


def test_a_graph_with_another_contract_is_refused_with_a_hint() -> None:
    minilm = bundle.default_embed_model_dir() / "model.onnx"  # takes token ids, not strings
    with pytest.raises(ModelUnavailable, match="Could not run ONNX model") as info:
        OnnxEmbedProvider("m", OnnxEmbedProvider.Config(path=str(minilm))).load()
    assert "string tensor 'inputs'" in info.value.hint
