"""Customer segmentation on feature vectors: features, fitting, assignment, agreement.

Pure numpy / scikit-learn, no store or pipeline code: the ``cluster`` step streams records and
calls into this module batch by batch. Everything is designed for a million records whose vectors
never sit in memory together:

* :class:`FeatureBuilder` turns an embedding plus numeric fields into one float32 row
  (cosine geometry for the vector; streaming mean/std for the numbers).
* :func:`fit_segmenter` reads the data through ``batches()``, a function returning a fresh
  iterator over feature batches (one call = one pass over the store). It makes **one pass**: a
  seeded, index-based sample (all rows up to ``minibatch_threshold``), then fits on that sample in
  memory. Centroids from a 50,000-row sample are as good as a mini-batch pass over every row
  (docs/segmentation.md has the measurements), and a second pass would cost more than the fit.
* :class:`Segmenter` is the small fitted object: centroids plus per-segment radius statistics.
  :meth:`Segmenter.assign` gives every row its segment, a score, a distance and an outlier flag;
  it is JSON-serialisable (:meth:`Segmenter.to_state`).
* :class:`Agreement` accumulates a contingency table batch by batch and gives the exact NMI and
  ARI against known labels.

Same input rows in the same order + same seed give the same segments, whatever the batch sizes
and the number of cores.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, NamedTuple, Self

import numpy as np

Algorithm = Literal["kmeans", "hdbscan"]
ALGORITHMS: tuple[str, ...] = ("kmeans", "hdbscan")
STATE_VERSION = 1
_MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this = its standard deviation
_MIN_MEMBERS_FOR_SPREAD = 20  # below this, a segment's own MAD is noise: use the pooled one
_PROBE_SIZE = 5_000  # sample rows that k: auto and HDBSCAN are fitted on


# --- features -----------------------------------------------------------------------------------


class FeatureBuilder:
    """Builds float32 feature rows from an embedding and optional numeric fields.

    The vector is L2-normalised, so squared Euclidean distance is ``2 - 2·cosine``: k-means on
    these rows is spherical k-means in all but name. Each numeric field is standardised (streaming
    mean and population std from :meth:`partial_fit`) and multiplied by ``weight · sqrt(V)``, where
    ``V = 1 - ||mean unit vector||²`` is the total variance of the normalised vectors. The field's
    variance is then ``weight² · V``: **weight 1.0 gives one numeric field the same say in the
    k-means objective as the whole embedding**, 0.5 a quarter of it, 0 none. Scaling by ``V``
    rather than by 1 keeps that meaning whatever the embedder: sentence vectors crowd into a
    cone, and their total variance ranges from about 0.3 to 0.9 depending on the model.

    Missing numeric values (``None``, NaN, infinities, text that is not a number) are replaced by
    the field's mean, which is 0 after standardising: the record is placed by its other features.
    :attr:`missing` counts them per field over everything :meth:`partial_fit` saw.
    """

    def __init__(self, numeric_fields: Sequence[str] = (), weights: Mapping[str, float] | None = None):
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(numeric_fields))
        if unknown:
            raise ValueError(f"weights given for {unknown}, which are not numeric fields {list(numeric_fields)}")
        bad = {name: w for name, w in weights.items() if not (math.isfinite(w) and w >= 0)}
        if bad:
            raise ValueError(f"weights must be finite and >= 0; got {bad}")
        self.numeric_fields = list(numeric_fields)
        self.weights = np.array([float(weights.get(f, 1.0)) for f in self.numeric_fields])
        width = len(self.numeric_fields)
        self.count = np.zeros(width, dtype=np.int64)
        self.mean = np.zeros(width)
        self._m2 = np.zeros(width)
        self.missing = np.zeros(width, dtype=np.int64)
        self.n_vectors = 0
        self._vector_sum: np.ndarray | None = None
        self._square_sum = 0.0

    def partial_fit(self, vectors: np.ndarray, numerics: Any = None) -> Self:
        """Update the vector mean and the numeric means/stds with one batch.

        ``numerics``: shape ``(n, len(numeric_fields))`` in field order; ``None`` marks a missing
        value. Batches merge exactly (Chan et al.), so the result does not depend on batch sizes.
        """
        unit = _unit_rows(vectors)
        if self._vector_sum is None:
            self._vector_sum = np.zeros(unit.shape[1])
        elif unit.shape[1] != self._vector_sum.shape[0]:
            raise ValueError(f"vectors have {unit.shape[1]} dimensions; earlier batches had {len(self._vector_sum)}")
        self._vector_sum += unit.sum(axis=0, dtype=np.float64)
        self._square_sum += float(np.einsum("ij,ij->", unit, unit, dtype=np.float64))
        self.n_vectors += unit.shape[0]
        if not self.numeric_fields:
            return self
        values = self._numeric_matrix(numerics, unit.shape[0])
        present = np.isfinite(values)
        self.missing += (~present).sum(axis=0)
        n_b = present.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_b = np.where(n_b > 0, np.nansum(values, axis=0) / np.maximum(n_b, 1), 0.0)
            m2_b = np.nansum((values - mean_b) ** 2, axis=0)
        total = self.count + n_b
        delta = mean_b - self.mean
        safe = np.maximum(total, 1)
        self.mean = self.mean + delta * n_b / safe
        self._m2 = self._m2 + m2_b + delta**2 * self.count * n_b / safe
        self.count = total
        return self

    @property
    def vector_variance(self) -> float:
        """Total variance of the normalised vectors seen by :meth:`partial_fit` (``V`` above)."""
        if self._vector_sum is None or self.n_vectors == 0:
            return 1.0
        mean = self._vector_sum / self.n_vectors
        return max(self._square_sum / self.n_vectors - float(mean @ mean), 1e-6)

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation of each numeric field (1 where it is constant or unseen)."""
        std = np.sqrt(self._m2 / np.maximum(self.count, 1))
        return np.where(std > 1e-12, std, 1.0)

    def transform(self, vectors: np.ndarray, numerics: Any = None) -> np.ndarray:
        """Feature rows: the unit vector, then each weighted, standardised numeric field."""
        unit = _unit_rows(vectors)
        if not self.numeric_fields:
            return unit
        if self.n_vectors == 0:
            raise RuntimeError("FeatureBuilder has numeric fields but no statistics; call partial_fit first")
        values = self._numeric_matrix(numerics, unit.shape[0])
        scaled = (values - self.mean) * (self.weights * math.sqrt(self.vector_variance) / self.std)
        scaled[~np.isfinite(scaled)] = 0.0  # mean imputation
        return np.hstack([unit, scaled.astype(np.float32)])

    def to_state(self) -> dict[str, Any]:
        """The fitted statistics as a JSON-serialisable dict (:meth:`from_state` reads it back)."""
        return {
            "numeric_fields": self.numeric_fields, "weights": self.weights.tolist(), "count": self.count.tolist(),
            "mean": self.mean.tolist(), "m2": self._m2.tolist(), "missing": self.missing.tolist(),
            "n_vectors": self.n_vectors, "square_sum": self._square_sum,
            "vector_sum": None if self._vector_sum is None else self._vector_sum.tolist(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> FeatureBuilder:
        fields = list(state["numeric_fields"])
        self = cls(fields, dict(zip(fields, state["weights"], strict=True)))
        self.count, self.missing = np.array(state["count"], dtype=np.int64), np.array(state["missing"], dtype=np.int64)
        self.mean, self._m2 = np.array(state["mean"], dtype=np.float64), np.array(state["m2"], dtype=np.float64)
        self.n_vectors, self._square_sum = int(state["n_vectors"]), float(state["square_sum"])
        self._vector_sum = None if state["vector_sum"] is None else np.array(state["vector_sum"], dtype=np.float64)
        return self

    def _numeric_matrix(self, numerics: Any, n: int) -> np.ndarray:
        width = len(self.numeric_fields)
        if numerics is None:
            return np.full((n, width), np.nan)
        try:
            values = np.array(numerics, dtype=np.float64)
        except (TypeError, ValueError):  # text in a numeric field: that value is missing
            values = np.array([[_to_float(v) for v in row] for row in numerics], dtype=np.float64)
        if values.ndim == 1 and width == 1:
            values = values[:, None]
        if values.shape != (n, width):
            raise ValueError(f"numerics must have shape ({n}, {width}) for fields {self.numeric_fields}; "
                             f"got {values.shape}")
        values[~np.isfinite(values)] = np.nan
        return values


def _to_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    X = np.asarray(vectors, dtype=np.float32)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"vectors must be a non-empty 2-D array (n, dim); got shape {X.shape}")
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))
    if not np.isfinite(norms).all():
        raise ValueError("vectors contain NaN or infinite values; check the embedder output")
    return X / np.maximum(norms, 1e-12)[:, None]


# --- fitting ------------------------------------------------------------------------------------


def fit_segmenter(
    batches: Callable[[], Iterable[np.ndarray]],
    n: int,
    *,
    k: int | Literal["auto"] = "auto",
    k_range: tuple[int, int] = (4, 12),
    algorithm: Algorithm = "kmeans",
    seed: int = 0,
    sample_size: int = 50_000,
    minibatch_threshold: int = 50_000,
    silhouette_size: int = 3_000,
    min_cluster_size: int | None = None,
    outlier_z: float = 3.5,
) -> Segmenter:
    """Fit segments on the feature rows that ``batches()`` yields, in one pass over them.

    ``n`` is the number of rows ``batches()`` will yield (the sample is drawn by index, so the
    rows must come in the same order on every call). Up to ``minibatch_threshold`` rows, every row
    is kept and fitted with k-means (scikit-learn ``KMeans``, best of 3 seeded runs); above it, a
    seeded sample of ``sample_size`` rows is fitted with ``MiniBatchKMeans`` (best of 3 runs), whose
    centres up to 20 Lloyd iterations on the same sample then settle. ``k="auto"`` fits every k
    of ``k_range`` (inclusive) on up to 5,000 sample rows and keeps the best silhouette, computed
    on ``silhouette_size`` of them; every k's score is kept in :attr:`Segmenter.k_scores`.
    Each fit runs on one thread and independent fits run side by side, one per core, so the
    result does not depend on the machine.

    ``algorithm="hdbscan"``: scikit-learn ``HDBSCAN`` on up to 5,000 sample rows finds the
    segments and their number (``k`` must be ``"auto"``); each segment's centre is the mean of its
    members and everyone is then assigned to the nearest centre. HDBSCAN's noise shapes no centre
    and no radius, so such rows come out as outliers. ``outlier_z``: see :class:`Segmenter`.
    """
    _check_options(n, k, k_range, algorithm, sample_size, minibatch_threshold, outlier_z)
    keep = n if n <= minibatch_threshold else min(sample_size, n)
    sample, n_seen = _draw_sample(batches(), n, keep, seed)
    order = np.random.default_rng([seed, 1]).permutation(len(sample))
    # A seeded subset for choosing k and scoring: the 33 k-means fits of k: auto took 5 s on
    # 5,000 rows, 15 s on 10,000 (random 384-d rows, busy 2-core machine); the silhouette is
    # computed on 3,000 of them anyway.
    probe = sample[order[: max(_PROBE_SIZE, silhouette_size)]]
    scored = probe[:silhouette_size]
    distances = _pairwise(scored)
    k_scores: dict[int, float] = {}
    members = None
    if algorithm == "hdbscan":
        centroids, members = _hdbscan_centroids(probe, min_cluster_size, seed)
        fitted_on = probe
    else:
        if k == "auto":
            k_scores = _silhouette_by_k(probe, distances, k_range, seed)
        chosen = k if k != "auto" else max(k_scores, key=lambda c: (k_scores[c], -c))
        centroids = _kmeans_centroids(sample, chosen, seed, minibatch=n > minibatch_threshold)
        fitted_on = sample
    segmenter = Segmenter.from_sample(centroids, fitted_on, members, outlier_z=outlier_z)
    segmenter.algorithm = algorithm
    segmenter.k_scores = k_scores
    segmenter.silhouette = _silhouette(distances, segmenter.assign(scored).labels)
    segmenter.n_seen, segmenter.sample_size, segmenter.seed = n_seen, len(sample), seed
    if members is not None:
        segmenter.noise_fraction = float(1 - members.mean())
    return segmenter


def _check_options(n: int, k: Any, k_range: tuple[int, int], algorithm: str, sample_size: int,
                   minibatch_threshold: int, outlier_z: float) -> None:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"Received invalid algorithm `{algorithm}`. Valid values are: {list(ALGORITHMS)}")
    if n < 2:
        raise ValueError(f"segmentation needs at least 2 rows; n={n}")
    if k != "auto" and (isinstance(k, bool) or not isinstance(k, int) or k < 2):
        raise ValueError(f"k must be an integer >= 2 or 'auto'; got {k!r}")
    if algorithm == "hdbscan" and k != "auto":
        raise ValueError("HDBSCAN chooses the number of segments itself: set k to 'auto' or use algorithm 'kmeans'")
    low, high = k_range
    if not 2 <= low <= high:
        raise ValueError(f"k_range must be (low, high) with 2 <= low <= high; got {k_range}")
    if sample_size < 100 or minibatch_threshold < 0 or not outlier_z > 0:
        raise ValueError("sample_size must be >= 100, minibatch_threshold >= 0 and outlier_z > 0")


def _draw_sample(batches: Iterable[np.ndarray], n: int, size: int, seed: int) -> tuple[np.ndarray, int]:
    """The rows at ``size`` seeded random positions of the first ``n`` (all of them if size >= n)."""
    rng = np.random.default_rng([seed, 0])
    wanted = np.arange(n) if size >= n else np.sort(rng.choice(n, size, replace=False))
    parts: list[np.ndarray] = []
    offset, dim = 0, None
    for batch in batches:
        X = np.asarray(batch, dtype=np.float32)
        if X.ndim != 2 or (dim is not None and X.shape[1] != dim):
            raise ValueError(f"feature batches must be 2-D with {dim or 'the same number of'} columns; got {X.shape}")
        dim = X.shape[1]
        lo, hi = np.searchsorted(wanted, [offset, offset + len(X)])
        if hi - lo == len(X):
            parts.append(X)  # all of it
        elif hi > lo:
            parts.append(X[wanted[lo:hi] - offset])  # a copy: the batch itself is not kept
        offset += len(X)
    if offset < 2 or not parts:
        raise ValueError(f"batches() yielded {offset} rows; segmentation needs at least 2")
    sample = np.concatenate(parts)
    if not np.isfinite(sample).all():
        raise ValueError("feature rows contain NaN or infinite values; build them with FeatureBuilder")
    return sample, offset


def _pairwise(X: np.ndarray) -> np.ndarray:
    """Euclidean distance matrix in float32 (4x faster than scikit-learn's float64-accurate one;
    a silhouette does not need the last digits)."""
    sq = np.einsum("ij,ij->i", X, X)
    d2 = X @ (-2 * X.T)
    d2 += sq
    d2 += sq[:, None]
    np.maximum(d2, 0, out=d2)
    np.fill_diagonal(d2, 0)
    return np.sqrt(d2, out=d2)


def _silhouette(distances: np.ndarray, labels: np.ndarray) -> float | None:
    from sklearn.metrics import silhouette_score

    if not 2 <= len(np.unique(labels)) <= len(labels) - 1:
        return None
    return float(silhouette_score(distances, labels, metric="precomputed"))


def _silhouette_by_k(probe: np.ndarray, distances: np.ndarray, k_range: tuple[int, int], seed: int) -> dict[int, float]:
    """Silhouette of k-means on ``probe`` for every k; the pairwise distances are computed once."""
    ks = list(range(k_range[0], min(k_range[1], len(probe) - 1) + 1))
    scores: dict[int, float] = {}
    for k, model in zip(ks, _fit_best(probe, ks, seed, minibatch=False), strict=True):
        score = _silhouette(distances, model.labels_[: len(distances)])
        if score is not None:
            scores[k] = score
    if not scores:
        raise ValueError(f"no k in {k_range} gives 2 or more segments on {len(probe)} rows; give k explicitly")
    return scores


def _kmeans_centroids(X: np.ndarray, k: int, seed: int, *, minibatch: bool) -> np.ndarray:
    from sklearn.cluster import KMeans

    k = min(k, len(X))
    (model,) = _fit_best(X, [k], seed, minibatch=minibatch)
    if minibatch:
        # At most 20 Lloyd iterations from the mini-batch centres settle them (~0.07 s each at
        # k=10 on 50,000 rows; uncapped, structureless data took 190).
        with _single_threaded():
            model = KMeans(k, init=model.cluster_centers_, n_init=1, max_iter=20, random_state=seed).fit(X)
    return np.asarray(model.cluster_centers_, dtype=np.float32)


def _fit_best(X: np.ndarray, ks: list[int], seed: int, *, minibatch: bool) -> list[Any]:
    """For each k, the lowest-inertia of 3 seeded k-means runs (KMeans, or MiniBatchKMeans).

    Below the threshold: ``KMeans`` (3 runs = scikit-learn's ``n_init=3``). Above it the sample
    is large (50,000 rows) and ``MiniBatchKMeans`` takes about a second per run; on small sets it
    loses 0.04-0.07 NMI to KMeans (docs/segmentation.md), hence the threshold. Three runs: with a
    blob of 1% of the rows, single runs ranged 0.93-1.00 NMI, the best of three 0.95-1.00.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans

    def fit(k: int, run: int) -> Any:
        with controller.limit(limits=1, user_api="openmp"):  # OpenMP's limit is per thread
            if minibatch:
                return MiniBatchKMeans(k, random_state=_derived(seed, run), n_init=3, batch_size=2048).fit(X)
            return KMeans(k, random_state=_derived(seed, run), n_init=1).fit(X)

    tasks = [(k, run) for k in ks for run in range(3)]
    with _single_threaded() as controller, ThreadPoolExecutor(min(len(tasks), os.cpu_count() or 1)) as pool:
        models = list(pool.map(lambda task: fit(*task), tasks))
    return [min(models[3 * i : 3 * i + 3], key=lambda m: float(m.inertia_)) for i in range(len(ks))]


@contextlib.contextmanager
def _single_threaded() -> Iterator[Any]:
    """Each fit on one thread; independent fits run side by side instead (``_fit_best``).

    KMeans sums per-thread partial centroids, so its result depends (in the last bits) on the
    thread count: pinned to one, segments are the same on every machine. On a busy 2-core
    machine OpenMP's spin-waiting also made 2 threads 10x SLOWER than 1 on small mini-batches.
    Fewer distinct rows than k only warns: Segmenter.from_sample drops the empty segments.
    """
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()
    with warnings.catch_warnings(), controller.limit(limits=1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield controller


def _derived(seed: int, stream: int) -> int:
    """An independent 32-bit seed for sub-task ``stream`` of a run seeded with ``seed``."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])


def _hdbscan_centroids(X: np.ndarray, min_cluster_size: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.cluster import HDBSCAN

    size = min_cluster_size or max(10, len(X) // 100)
    with _single_threaded():
        labels = HDBSCAN(min_cluster_size=size, copy=True).fit(X).labels_
    found = np.unique(labels[labels >= 0])
    if found.size == 0:
        raise ValueError(f"HDBSCAN found no segment in {len(X)} rows (min_cluster_size={size}): everything is "
                         "noise. Lower min_cluster_size, or use algorithm 'kmeans'")
    centroids = np.stack([X[labels == c].mean(axis=0) for c in found]).astype(np.float32)
    return centroids, labels >= 0



# --- the fitted segmenter -----------------------------------------------------------------------


class Assignment(NamedTuple):
    """What :meth:`Segmenter.assign` returns for a batch of rows (all arrays of length n)."""

    labels: np.ndarray  # int64 segment id, 0..k-1; outliers too get their nearest segment
    scores: np.ndarray  # float32 in [0, 1]: how firmly the row belongs to its segment
    distances: np.ndarray  # float32 Euclidean distance to the segment's centre
    outliers: np.ndarray  # bool: far beyond the segment's typical radius


class Segmenter:
    """Fitted segments: centres and per-segment radius statistics (a few KB, JSON-serialisable).

    **Ids** are stable: segment 0 is the largest on the fitted sample, then by decreasing size,
    ties broken by the centres' coordinates, so ids never depend on scikit-learn's internal order.

    **Score** of a row: ``(b - a) / b``, with ``a`` its distance to its own centre and ``b`` to the
    second nearest: the simplified silhouette (Hruschka et al., 2004). 1 at the centre, 0 on the
    border with another segment, whatever the embedder's distance scale, from distances that
    assignment computes anyway; its mean tracks the silhouette used to choose k. A posterior
    ``exp(-d²/T)`` would need a temperature and saturates to 0/1 in 384+ dimensions.

    **Outliers**: ``a > radius + outlier_z · spread`` of their segment, where radius is the median
    distance of the segment's sample members to the centre and spread their MAD × 1.4826 (a robust
    z-score; 3.5 is Iglewicz and Hoaglin's usual cut-off). Segments with fewer than 20 sample
    members use the spread pooled over all segments. Outliers keep their nearest segment: nothing
    is dropped, and the flag lets a report or a reviewer set them aside.
    """

    def __init__(self, centroids: Any, sizes: Any, radius: Any, spread: Any, *, outlier_z: float = 3.5):
        self.centroids = np.asarray(centroids, dtype=np.float32)
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.radius = np.asarray(radius, dtype=np.float32)
        self.spread = np.asarray(spread, dtype=np.float32)
        self.outlier_z = float(outlier_z)
        self._sq_norms = np.einsum("ij,ij->i", self.centroids, self.centroids)
        # Filled by fit_segmenter; reported in the state.
        self.algorithm: str = "kmeans"
        self.k_scores: dict[int, float] = {}
        self.silhouette: float | None = None
        self.n_seen = self.sample_size = self.seed = 0
        self.noise_fraction: float | None = None

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    @property
    def thresholds(self) -> np.ndarray:
        """Distance beyond which a row of each segment is an outlier."""
        return self.radius + np.float32(self.outlier_z) * self.spread

    @classmethod
    def from_sample(cls, centroids: np.ndarray, sample: np.ndarray, members: np.ndarray | None = None,
                    *, outlier_z: float = 3.5) -> Segmenter:
        """Relabel ``centroids`` by size on ``sample`` and learn each segment's radius from it.

        ``members`` (bool per sample row): the rows that count (HDBSCAN's non-noise); default all.
        Centres that no member is nearest to are dropped.
        """
        use = np.ones(len(sample), dtype=bool) if members is None else np.asarray(members, dtype=bool)
        labels, _, _ = _nearest(sample, np.asarray(centroids, dtype=np.float32))
        sizes = np.bincount(labels[use], minlength=len(centroids))
        centroids = np.asarray(centroids, dtype=np.float32)[sizes > 0]
        sizes = sizes[sizes > 0]
        order = np.lexsort((*centroids.T[::-1], -sizes))
        centroids, sizes = centroids[order], sizes[order]
        labels, own, _ = _nearest(sample, centroids)
        labels, own = labels[use], own[use]
        radius = np.array([np.median(own[labels == j]) for j in range(len(centroids))])
        deviation = np.abs(own - radius[labels])
        pooled = _MAD_TO_SIGMA * float(np.median(deviation))
        spread = np.array([
            _MAD_TO_SIGMA * float(np.median(deviation[labels == j])) if sizes[j] >= _MIN_MEMBERS_FOR_SPREAD
            else pooled for j in range(len(centroids))
        ])
        return cls(centroids, sizes, radius, np.maximum(spread, 1e-6), outlier_z=outlier_z)

    def assign(self, features: np.ndarray) -> Assignment:
        """Segment, score, distance and outlier flag of each feature row (any batch size)."""
        X = np.asarray(features, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.dim:
            raise ValueError(f"features must have shape (n, {self.dim}) like the fitted rows; got {X.shape}")
        labels, own, second = _nearest(X, self.centroids, self._sq_norms)
        with np.errstate(invalid="ignore", divide="ignore"):
            scores = np.where(np.isfinite(second) & (second > 0), (second - own) / second, 1.0)  # k=1: 1
        scores = np.clip(scores, 0.0, 1.0).astype(np.float32)
        return Assignment(labels, scores, own, own > self.thresholds[labels])

    def to_state(self) -> dict[str, Any]:
        """A JSON-serialisable dict (lists and numbers only); :meth:`from_state` reads it back."""
        return {
            "version": STATE_VERSION, "algorithm": self.algorithm, "k": self.k, "dim": self.dim,
            "centroids": self.centroids.tolist(), "sizes": self.sizes.tolist(), "radius": self.radius.tolist(),
            "spread": self.spread.tolist(), "outlier_z": self.outlier_z,
            "k_scores": [[k, s] for k, s in sorted(self.k_scores.items())], "silhouette": self.silhouette,
            "n_seen": self.n_seen, "sample_size": self.sample_size, "seed": self.seed,
            "noise_fraction": self.noise_fraction,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Segmenter:
        """Rebuild a segmenter from :meth:`to_state`; a wrong state raises ``ValueError`` naming the key."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"segmenter state version {state.get('version')!r} is not {STATE_VERSION}; refit")
        try:
            self = cls(state["centroids"], state["sizes"], state["radius"], state["spread"],
                       outlier_z=state["outlier_z"])
            self.algorithm, self.silhouette = str(state["algorithm"]), state["silhouette"]
            self.k_scores = {int(k): float(s) for k, s in state["k_scores"]}
            self.n_seen, self.sample_size = int(state["n_seen"]), int(state["sample_size"])
            self.seed = int(state["seed"])
            self.noise_fraction = state["noise_fraction"]
        except KeyError as exc:
            raise ValueError(f"segmenter state has no {exc.args[0]!r}; write it with Segmenter.to_state") from exc
        k = self.k
        lengths = {len(self.sizes), len(self.radius), len(self.spread)}
        if self.centroids.ndim != 2 or k != state["k"] or lengths != {k}:
            raise ValueError(f"segmenter state is inconsistent: k={state['k']}, centroids {self.centroids.shape}, "
                             f"sizes/radius/spread of lengths {len(self.sizes)}/{len(self.radius)}/{len(self.spread)}")
        return self


def _nearest(X: np.ndarray, centroids: np.ndarray, sq_norms: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index of the nearest centre, distance to it and to the second nearest (inf when k = 1)."""
    if sq_norms is None:
        sq_norms = np.einsum("ij,ij->i", centroids, centroids)
    d2 = X @ (-2 * centroids.T)
    d2 += sq_norms
    d2 += np.einsum("ij,ij->i", X, X)[:, None]
    np.maximum(d2, 0, out=d2)
    labels = d2.argmin(axis=1)
    if d2.shape[1] == 1:
        return labels, np.sqrt(d2[:, 0]), np.full(len(X), np.inf, dtype=np.float32)
    two = np.partition(d2, 1, axis=1)
    return labels, np.sqrt(two[:, 0]), np.sqrt(two[:, 1])


# --- agreement with known labels ----------------------------------------------------------------


class Agreement:
    """Contingency table of known labels × predicted segments, filled batch by batch.

    :meth:`nmi` and :meth:`ari` are exact, equal to scikit-learn's ``normalized_mutual_info_score``
    (arithmetic averaging, its default) and ``adjusted_rand_score`` on all the labels at once.
    """

    def __init__(self) -> None:
        self._rows: dict[Any, int] = {}
        self._cols: dict[Any, int] = {}
        self.table = np.zeros((0, 0), dtype=np.int64)

    def add(self, true_labels: Sequence[Any] | np.ndarray, pred_labels: Sequence[Any] | np.ndarray) -> Self:
        true, pred = np.asarray(true_labels), np.asarray(pred_labels)
        if true.shape != pred.shape or true.ndim != 1:
            raise ValueError(f"true and predicted labels must be 1-D, of one length; got {true.shape}, {pred.shape}")
        t_values, t_index = np.unique(true, return_inverse=True)
        p_values, p_index = np.unique(pred, return_inverse=True)
        rows = np.array([self._rows.setdefault(v, len(self._rows)) for v in t_values.tolist()], dtype=np.intp)
        cols = np.array([self._cols.setdefault(v, len(self._cols)) for v in p_values.tolist()], dtype=np.intp)
        grown = np.zeros((len(self._rows), len(self._cols)), dtype=np.int64)
        grown[: self.table.shape[0], : self.table.shape[1]] = self.table
        local = np.bincount(t_index * len(p_values) + p_index, minlength=len(t_values) * len(p_values))
        grown[np.ix_(rows, cols)] += local.reshape(len(t_values), len(p_values))
        self.table = grown
        return self

    @property
    def n(self) -> int:
        return int(self.table.sum())

    def nmi(self) -> float:
        """Normalised mutual information, arithmetic mean of the two entropies as normaliser."""
        rows, cols = self.table.sum(axis=1), self.table.sum(axis=0)
        if len(rows) == len(cols) <= 1:
            return 1.0  # both labellings put everything in one group (or there is nothing): a perfect match
        if len(rows) == 1 or len(cols) == 1:
            return 0.0  # one side has a single group: no information shared
        n = float(self.table.sum())
        i, j = np.nonzero(self.table)
        nij = self.table[i, j].astype(np.float64)
        mi = float(np.sum(nij / n * (np.log(nij) - np.log(rows[i] * cols[j].astype(np.float64)) + math.log(n))))
        if mi <= 1e-15:  # scikit-learn clips rounding noise to 0 the same way
            return 0.0
        return mi / ((_entropy(rows) + _entropy(cols)) / 2)

    def ari(self) -> float:
        """Adjusted Rand index, from pair counts in exact integer arithmetic."""
        n = int(self.table.sum())
        same_both = int((self.table**2).sum())
        same_true = int((self.table.sum(axis=1) ** 2).sum()) - same_both
        same_pred = int((self.table.sum(axis=0) ** 2).sum()) - same_both
        tp, fn, fp = same_both - n, same_true, same_pred
        tn = n * n - fp - fn - same_both
        if fn == 0 and fp == 0:
            return 1.0
        return 2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))


def _entropy(counts: np.ndarray) -> float:
    counts = counts[counts > 0].astype(np.float64)
    total = counts.sum()
    return float(-np.sum(counts / total * (np.log(counts) - math.log(total))))
