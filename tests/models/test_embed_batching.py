"""Length-grouped, token-budgeted embedding calls (no model: fake sessions record every call)."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import pytest

from matcha.models.base import embed_by_length, length_batches
from matcha.models.fastembed_provider import FastEmbedConfig, FastEmbedProvider
from matcha.models.onnx_provider import OnnxEmbedConfig, OnnxEmbedProvider, split_text

pytestmark = pytest.mark.unit

DIM = 8


def fake_vectors(texts: list[str]) -> np.ndarray:
    """A vector that depends on the text only, so rows can be traced back to their text."""
    rng = [np.random.default_rng(zlib.crc32(t.encode())) for t in texts]
    return np.stack([r.standard_normal(DIM) for r in rng]).astype(np.float32) if texts else np.zeros((0, DIM))


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@pytest.mark.parametrize(("lengths", "budget", "max_items", "groups"), [
    ([], 100, 10, []),
    ([5], 100, 10, [[0]]),
    ([1, 9, 3, 9, 2], 100, 10, [[1, 3, 2, 4, 0]]),  # longest first, ties in input order
    ([10] * 7, 30, 10, [[0, 1, 2], [3, 4, 5], [6]]),  # 3 x 10 fits a budget of 30, 4 x 10 does not
    ([10] * 7, 1000, 2, [[0, 1], [2, 3], [4, 5], [6]]),  # max_items
    ([500, 3, 3], 100, 10, [[0], [1, 2]]),  # over the budget: alone
    ([0, 0, 0], 2, 10, [[0, 1], [2]]),  # empty texts count as one
    ([50, 40, 30, 20, 10], 100, 10, [[0, 1], [2, 3, 4]]),
])
def test_length_batches(lengths: list[int], budget: int, max_items: int, groups: list[list[int]]) -> None:
    assert length_batches(lengths, budget, max_items) == groups


def test_every_group_respects_the_budget_on_random_lengths() -> None:
    rng = np.random.default_rng(0)
    lengths = [int(x) for x in rng.integers(1, 600, 2_000)] + [5_000, 70_000]
    groups = length_batches(lengths, 2048, 256)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for group in groups:
        longest = max(lengths[i] for i in group)
        assert len(group) <= 256
        assert len(group) * longest <= 2048 or len(group) == 1


def test_embed_by_length_restores_the_input_order() -> None:
    texts = [f"text {'x' * (i * 37 % 50)} {i}" for i in range(300)]
    calls: list[list[str]] = []

    def call(batch: list[str]) -> np.ndarray:
        calls.append(batch)
        return fake_vectors(batch)

    out = embed_by_length(texts, [len(t) for t in texts], 400, 64, DIM, call)
    np.testing.assert_array_equal(out, fake_vectors(texts))
    assert len(calls) > 1 and all(len(c) * max(map(len, c)) <= 400 for c in calls)


class FakeSession:
    """Stands in for an onnxruntime session taking strings."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def run(self, outputs: list[str], feeds: dict[str, Any]) -> list[np.ndarray]:
        batch = [str(t) for t in feeds["inputs"]]
        self.calls.append(batch)
        return [fake_vectors(batch)]


def fake_onnx(**config: Any) -> tuple[OnnxEmbedProvider, FakeSession]:
    provider = OnnxEmbedProvider("fake", OnnxEmbedConfig(**config))
    session = FakeSession()
    provider._session, provider._dim = session, DIM
    return provider, session


@pytest.mark.parametrize("texts", [
    [],
    ["one"],
    ["short", "a much longer text " * 20, "", "mid length text", "short"],
    [f"review {i} " + "word " * (i % 17) for i in range(200)],
])
def test_onnx_rows_follow_the_input_order(texts: list[str]) -> None:
    provider, session = fake_onnx(max_batch_chars=300, batch_size=16)
    out = provider.embed(texts)
    assert out.shape == (len(texts), DIM)
    np.testing.assert_allclose(out, unit(fake_vectors(texts)), atol=1e-6)
    for batch in session.calls:
        assert len(batch) <= 16 and (len(batch) * max(len(t) for t in batch) <= 300 or len(batch) == 1)


def test_onnx_long_texts_are_pieces_averaged_by_length() -> None:
    long = " ".join(f"word{i}" for i in range(3_000))  # 25,889 characters
    provider, session = fake_onnx(max_chars=10_000)
    out = provider.embed(["short", long])
    pieces = split_text(long, 10_000)
    assert len(pieces) == 3 and "".join(pieces) == long and max(map(len, pieces)) <= 10_000
    assert all(p.endswith(" ") for p in pieces[:-1])  # cut at whitespace, never mid-word
    assert max(len(t) for batch in session.calls for t in batch) <= 10_000
    weights = np.array([len(p) for p in pieces], dtype=np.float32)[:, None]
    np.testing.assert_allclose(out[1], unit((unit(fake_vectors(pieces)) * weights).sum(axis=0)), atol=1e-6)
    np.testing.assert_allclose(out[0], unit(fake_vectors(["short"]))[0], atol=1e-6)


@pytest.mark.parametrize(("text", "max_chars", "pieces"), [
    ("", 100, [""]),
    ("a" * 100, 100, ["a" * 100]),
    ("a" * 250, 100, ["a" * 100, "a" * 100, "a" * 50]),  # no whitespace: cut anyway
    ("abc " * 30, 100, ["abc " * 25, "abc " * 5]),
    ("x" * 80 + " " + "y" * 80, 100, ["x" * 80 + " ", "y" * 80]),
    ("x" * 30 + " " + "y" * 150, 100, ["x" * 30 + " " + "y" * 69, "y" * 81]),  # space in the first half only
])
def test_split_text(text: str, max_chars: int, pieces: list[str]) -> None:
    assert split_text(text, max_chars) == pieces


class FakeFastEmbed:
    def __init__(self) -> None:
        self.calls: list[tuple[list[str], int]] = []

    def embed(self, texts: list[str], batch_size: int) -> Any:
        self.calls.append((texts, batch_size))
        return iter(fake_vectors(texts))


def test_fastembed_calls_are_budgeted_by_tokens_without_a_tokenizer() -> None:
    provider = FastEmbedProvider("fake", FastEmbedConfig(max_batch_tokens=256, batch_size=8))
    fake = FakeFastEmbed()
    provider._model, provider._dim = fake, DIM
    texts = [f"t{i} " + "é" * (i % 40) for i in range(100)] + ["z" * 5_000]
    np.testing.assert_allclose(provider.embed(texts), unit(fake_vectors(texts)), atol=1e-6)
    lengths = provider.token_lengths(texts)
    assert lengths[1] == len("t1 é".encode()) + 2 and lengths[-1] == 512  # bytes bound, capped at the truncation
    for batch, batch_size in fake.calls:
        assert batch_size == len(batch) <= 8
        assert len(batch) * max(provider.token_lengths(batch)) <= 256 or len(batch) == 1
    assert provider.embed([]).shape == (0, DIM)


def test_batching_settings_do_not_change_the_cache_fingerprint() -> None:
    onnx = OnnxEmbedProvider("a", OnnxEmbedConfig()).fingerprint
    assert OnnxEmbedProvider("a", OnnxEmbedConfig(max_batch_chars=99, batch_size=3)).fingerprint == onnx
    assert OnnxEmbedProvider("a", OnnxEmbedConfig(max_chars=500)).fingerprint != onnx  # changes vectors
    fast = FastEmbedProvider("a", FastEmbedConfig()).fingerprint
    assert FastEmbedProvider("a", FastEmbedConfig(max_batch_tokens=64)).fingerprint == fast
