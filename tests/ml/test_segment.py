"""Segmentation core: features, fitting, assignment, state, agreement. Synthetic blobs only."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from matcha.ml.segment import Agreement, FeatureBuilder, Segmenter, fit_segmenter

pytestmark = pytest.mark.unit


def blobs(sizes: tuple[int, ...], dim: int = 32, spread: float = 0.15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around one random direction per blob, shuffled; returns (rows, true blob)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((len(sizes), dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    rng.shuffle(labels)
    X = centres[labels] + rng.standard_normal((len(labels), dim)) * spread / np.sqrt(dim)
    return FeatureBuilder().transform(X), labels


def batched(X: np.ndarray, size: int) -> Callable[[], Iterator[np.ndarray]]:
    def batches() -> Iterator[np.ndarray]:
        for start in range(0, len(X), size):
            yield X[start : start + size]

    return batches


def nmi(a: np.ndarray, b: np.ndarray) -> float:
    return float(normalized_mutual_info_score(a, b))


# --- features -----------------------------------------------------------------------------------


def test_vectors_are_unit_float32_rows() -> None:
    X = np.random.default_rng(0).standard_normal((50, 8)) * 7
    F = FeatureBuilder().transform(X)
    assert F.dtype == np.float32 and F.shape == (50, 8)
    np.testing.assert_allclose(np.linalg.norm(F, axis=1), 1, rtol=1e-6)


def test_streaming_statistics_equal_one_shot() -> None:
    rng = np.random.default_rng(1)
    X, nums = rng.standard_normal((1000, 16)), rng.normal(50, 10, (1000, 2))
    nums[rng.random((1000, 2)) < 0.1] = np.nan
    whole = FeatureBuilder(["spend", "age"]).partial_fit(X, nums)
    streamed = FeatureBuilder(["spend", "age"])
    for start in range(0, 1000, 137):
        streamed.partial_fit(X[start : start + 137], nums[start : start + 137])
    np.testing.assert_allclose(streamed.mean, np.nanmean(nums, axis=0))
    np.testing.assert_allclose(streamed.std, np.nanstd(nums, axis=0))
    np.testing.assert_allclose(streamed.vector_variance, whole.vector_variance)
    np.testing.assert_allclose(streamed.transform(X, nums), whole.transform(X, nums), rtol=1e-6)
    assert streamed.missing.tolist() == np.isnan(nums).sum(axis=0).tolist()


def test_feature_state_round_trips_through_json() -> None:
    rng = np.random.default_rng(3)
    X, nums = rng.standard_normal((100, 8)), rng.normal(5, 2, (100, 2))
    nums[::7, 1] = np.nan
    builder = FeatureBuilder(["a", "b"], {"b": 0.5}).partial_fit(X, nums)
    restored = FeatureBuilder.from_state(json.loads(json.dumps(builder.to_state())))
    np.testing.assert_array_equal(restored.transform(X, nums), builder.transform(X, nums))
    assert restored.to_state() == builder.to_state()


@pytest.mark.parametrize("weight", [0.5, 1.0, 2.0])
def test_weight_sets_the_numeric_share_of_variance(weight: float) -> None:
    rng = np.random.default_rng(2)
    X, spend = rng.standard_normal((4000, 24)) + 1.5, rng.lognormal(3, 1, 4000)
    builder = FeatureBuilder(["spend"], {"spend": weight}).partial_fit(X, spend[:, None])
    F = builder.transform(X, spend[:, None])
    vector_variance = F[:, :24].var(axis=0).sum()
    assert vector_variance == pytest.approx(builder.vector_variance, rel=1e-3)
    assert F[:, 24].var() == pytest.approx(weight**2 * vector_variance, rel=1e-3)


def test_missing_and_bad_numbers_are_imputed_with_the_mean() -> None:
    X = np.eye(4)
    values = [[1.0], [None], [3.0], [float("inf")]]
    builder = FeatureBuilder(["rating"]).partial_fit(X, values)
    assert builder.missing.tolist() == [2] and builder.mean.tolist() == [2.0]
    F = builder.transform(X, [["2"], ["n/a"], [None], [3.0]])  # text that is not a number: missing
    assert F[:, 4].tolist()[:3] == [0.0, 0.0, 0.0] and F[3, 4] > 0
    assert np.all(FeatureBuilder(["rating"]).partial_fit(X, None).transform(X)[:, 4] == 0)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: FeatureBuilder(["a"], {"b": 1.0}), ValueError, "not numeric fields"),
        (lambda: FeatureBuilder(["a"], {"a": -1.0}), ValueError, "finite and >= 0"),
        (lambda: FeatureBuilder(["a"]).transform(np.eye(2), [[1], [2]]), RuntimeError, "call partial_fit"),
        (lambda: FeatureBuilder().transform(np.array([[np.nan, 1.0]])), ValueError, "NaN"),
        (lambda: FeatureBuilder(["a", "b"]).partial_fit(np.eye(2), [[1], [2]]), ValueError, r"shape \(2, 2\)"),
        (lambda: FeatureBuilder().partial_fit(np.eye(2)).partial_fit(np.eye(3)), ValueError, "dimensions"),
    ],
)
def test_feature_errors(make: Callable[[], Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make()


# --- fitting ------------------------------------------------------------------------------------


def test_auto_finds_the_number_of_well_separated_blobs() -> None:
    X, truth = blobs((300, 250, 200, 150))
    segmenter = fit_segmenter(batched(X, 128), len(X), k="auto", k_range=(2, 8), seed=0)
    assert segmenter.k == 4
    assert sorted(segmenter.k_scores) == list(range(2, 9))
    assert max(segmenter.k_scores, key=segmenter.k_scores.__getitem__) == 4
    assert segmenter.silhouette == pytest.approx(segmenter.k_scores[4], abs=0.05)
    assert nmi(truth, segmenter.assign(X).labels) == pytest.approx(1.0)


def test_ids_follow_size_and_do_not_depend_on_sklearn_order() -> None:
    X, truth = blobs((100, 400, 250, 50), seed=3)
    labels = fit_segmenter(batched(X, 100), len(X), k=4, seed=0).assign(X).labels
    # segment 0 is the largest blob (true blob 1), then 2, 0, 3
    assert [int(np.bincount(truth[labels == s]).argmax()) for s in range(4)] == [1, 2, 0, 3]
    centres = np.stack([X[truth == b].mean(axis=0) for b in range(4)])
    one = Segmenter.from_sample(centres, X)
    other = Segmenter.from_sample(centres[::-1], X)
    np.testing.assert_array_equal(one.centroids, other.centroids)
    assert one.sizes.tolist() == [400, 250, 100, 50]


def test_same_seed_same_segments_whatever_the_batch_size() -> None:
    X, _ = blobs((400, 300, 300), seed=4)
    states = [fit_segmenter(batched(X, size), len(X), k="auto", seed=7).to_state() for size in (1000, 333, 64)]
    assert states[0] == states[1] == states[2]
    big = [fit_segmenter(batched(X, size), len(X), k=3, seed=7, minibatch_threshold=500, sample_size=600).to_state()
           for size in (1000, 97)]
    assert big[0] == big[1] and big[0]["sample_size"] == 600


def test_streaming_fit_equals_kmeans_on_all_rows_in_memory() -> None:
    X, _ = blobs((200, 150, 150, 100), seed=5, spread=0.6)
    segmenter = fit_segmenter(batched(X, 50), len(X), k=4, seed=3)
    reference = KMeans(4, random_state=0, n_init=10).fit(X)
    expected = Segmenter.from_sample(reference.cluster_centers_, X)
    np.testing.assert_allclose(segmenter.centroids, expected.centroids, rtol=1e-5, atol=1e-6)
    assert adjusted_rand_score(reference.labels_, segmenter.assign(X).labels) == 1.0


def test_minibatch_path_on_a_sample_recovers_blobs() -> None:
    X, truth = blobs((3000, 2000, 1500, 1000), seed=6)
    segmenter = fit_segmenter(batched(X, 1000), len(X), k="auto", seed=0, sample_size=2000, minibatch_threshold=4000)
    assert (segmenter.k, segmenter.sample_size, segmenter.n_seen) == (4, 2000, 7500)
    assert nmi(truth, segmenter.assign(X).labels) > 0.99


def test_outliers_are_flagged_and_keep_their_nearest_segment() -> None:
    X, _ = blobs((400, 400), seed=7)
    far = np.random.default_rng(0).standard_normal((5, X.shape[1])).astype(np.float32)
    far /= np.linalg.norm(far, axis=1, keepdims=True)
    rows = np.vstack([X, far])
    segmenter = fit_segmenter(batched(rows, 100), len(rows), k=2, seed=0)
    assigned = segmenter.assign(rows)
    assert len(assigned.labels) == len(rows) and set(assigned.labels.tolist()) == {0, 1}
    assert assigned.outliers[-5:].all()
    assert assigned.outliers[:-5].mean() < 0.01
    assert (assigned.distances[-5:] > segmenter.thresholds[assigned.labels[-5:]]).all()


def test_scores_are_between_zero_and_one_and_highest_at_the_centre() -> None:
    X, _ = blobs((300, 300), seed=8)
    segmenter = fit_segmenter(batched(X, 100), len(X), k=2, seed=0)
    assigned = segmenter.assign(np.vstack([X, segmenter.centroids, segmenter.centroids.mean(axis=0, keepdims=True)]))
    assert assigned.scores.dtype == np.float32
    assert ((assigned.scores >= 0) & (assigned.scores <= 1)).all()
    assert assigned.scores[-3:-1].tolist() == [1.0, 1.0]
    assert assigned.scores[-1] == pytest.approx(0.0, abs=1e-3)  # halfway between the two centres


def test_identical_rows_give_one_segment_and_auto_says_why() -> None:
    X = np.ones((50, 4), dtype=np.float32)
    segmenter = fit_segmenter(lambda: iter([X]), 50, k=3)
    assigned = segmenter.assign(X)
    assert segmenter.k == 1 and segmenter.silhouette is None
    assert assigned.scores.tolist() == [1.0] * 50 and not assigned.outliers.any()
    with pytest.raises(ValueError, match="give k explicitly"):
        fit_segmenter(lambda: iter([X]), 50, k="auto")


def test_hdbscan_finds_blobs_and_flags_noise() -> None:
    X, truth = blobs((500, 400, 300), seed=9, spread=0.1)
    noise = np.random.default_rng(1).standard_normal((60, X.shape[1])).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    rows = np.vstack([X, noise])
    segmenter = fit_segmenter(batched(rows, 200), len(rows), algorithm="hdbscan", seed=0)
    assigned = segmenter.assign(rows)
    assert segmenter.k == 3 and segmenter.algorithm == "hdbscan"
    assert segmenter.noise_fraction == pytest.approx(60 / len(rows), abs=0.02)
    assert nmi(truth, assigned.labels[: len(X)]) == pytest.approx(1.0)
    assert assigned.outliers[len(X) :].all() and assigned.outliers[: len(X)].mean() < 0.01


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"k": 1}, "integer >= 2"),
        ({"k": "five"}, "integer >= 2"),
        ({"algorithm": "dbscan"}, r"Valid values are: \['kmeans', 'hdbscan'\]"),
        ({"algorithm": "hdbscan", "k": 3}, "set k to 'auto'"),
        ({"k_range": (1, 5)}, "2 <= low <= high"),
        ({"k_range": (6, 5)}, "2 <= low <= high"),
        ({"sample_size": 10}, "sample_size must be >= 100"),
    ],
)
def test_bad_options(options: dict[str, Any], match: str) -> None:
    X, _ = blobs((50, 50))
    with pytest.raises(ValueError, match=match):
        fit_segmenter(batched(X, 10), len(X), **options)


def test_fewer_rows_than_announced_and_no_rows() -> None:
    X, _ = blobs((100, 100), seed=10)
    segmenter = fit_segmenter(batched(X, 30), 250, k=2, seed=0)
    assert segmenter.n_seen == 200
    with pytest.raises(ValueError, match="yielded 0 rows"):
        fit_segmenter(lambda: iter([]), 100, k=2)


def test_state_round_trips_through_json() -> None:
    X, _ = blobs((300, 200, 100), seed=11)
    segmenter = fit_segmenter(batched(X, 100), len(X), k="auto", k_range=(2, 5), seed=0)
    state = json.loads(json.dumps(segmenter.to_state()))
    restored = Segmenter.from_state(state)
    assert restored.to_state() == segmenter.to_state()
    for got, expected in zip(restored.assign(X), segmenter.assign(X), strict=True):
        np.testing.assert_array_equal(got, expected)
    assert state["k"] == 3 and [k for k, _ in state["k_scores"]] == [2, 3, 4, 5]
    assert state["algorithm"] == "kmeans" and 0 < state["silhouette"] <= 1


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"version": 99}, "version 99"),
        ({"radius": [0.1]}, "inconsistent"),
        ({"k": 7}, "inconsistent"),
    ],
)
def test_bad_state(change: dict[str, Any], match: str) -> None:
    X, _ = blobs((100, 100))
    state = {**fit_segmenter(batched(X, 100), len(X), k=2).to_state(), **change}
    with pytest.raises(ValueError, match=match):
        Segmenter.from_state(state)
    del state["centroids"]
    with pytest.raises(ValueError, match=r"no 'centroids'|version"):
        Segmenter.from_state(state)


def test_assign_checks_the_width() -> None:
    X, _ = blobs((100, 100))
    with pytest.raises(ValueError, match=r"shape \(n, 32\)"):
        fit_segmenter(batched(X, 100), len(X), k=2).assign(np.zeros((3, 31)))


# --- agreement ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_agreement_equals_sklearn_on_random_labels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    true = rng.choice(["billing", "delivery", "quality", "size"][: rng.integers(1, 5)], n)
    pred = np.where(rng.random(n) < 0.6, rng.integers(0, 6, n), (true == "billing").astype(int))
    agreement = Agreement()
    for start in range(0, n, 251):
        agreement.add(true[start : start + 251], pred[start : start + 251])
    assert agreement.n == n
    assert agreement.nmi() == pytest.approx(normalized_mutual_info_score(true, pred), abs=1e-12)
    assert agreement.ari() == pytest.approx(adjusted_rand_score(true, pred), abs=1e-12)


@pytest.mark.parametrize(
    ("true", "pred"),
    [([0, 0, 0], [1, 1, 1]), ([0, 0, 0], [0, 1, 2]), ([0, 1, 2], [5, 5, 5]), ([0, 1, 0, 1], [1, 0, 1, 0]), ([], [])],
)
def test_agreement_edge_cases_match_sklearn(true: list[int], pred: list[int]) -> None:
    agreement = Agreement().add(np.array(true, dtype=int), np.array(pred, dtype=int))
    assert agreement.nmi() == pytest.approx(normalized_mutual_info_score(true, pred))
    assert agreement.ari() == pytest.approx(adjusted_rand_score(true, pred))
