"""``cluster``: put every record in a segment, from its vector (and optional numeric fields).

A dataset-scoped step: ``fit`` streams the whole input once (a seeded sample by position, the
numeric fields' mean and spread), chooses ``k`` by silhouette when ``k: auto``, and fits k-means
(mini-batch past ``minibatch_threshold``) or HDBSCAN on the sample; the fitted segments are saved,
so a resumed run assigns with the same ones. ``process`` then gives each record ``segment`` (a
stable id: 0 is the largest), ``segment_score`` (0..1, how firmly it belongs), ``segment_distance``
and ``segment_outlier``: outliers are flagged, never dropped. With ``labels_field`` the step
reports NMI and ARI of the segments against that known column. See :mod:`matcha.ml.segment`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import numpy as np
import structlog
from pydantic import Field, field_validator, model_validator

from matcha.steps.base import BatchOutcome, DatasetView, Record, Step, StepConfig, StepContext, register_step
from matcha.steps.vectors import vectors_of

log = structlog.get_logger("matcha.step")
WEAK_SILHOUETTE = 0.1  # under it, Kaufman and Rousseeuw's "no substantial structure" and then some


class ClusterConfig(StepConfig):
    vectors: str | None = Field(None, description="Field holding the vectors (default: the output of the nearest "
                                "upstream embed step).")
    numeric: list[str] | dict[str, float] = Field(
        default_factory=list, description="Numeric fields to cluster on too, standardised: a list, or "
        "{field: weight} (weight 1.0 gives a field as much say as the whole text vector).")
    k: int | Literal["auto"] = Field("auto", description="Number of segments, or `auto` (best silhouette "
                                     "over `k_range`).")
    k_range: tuple[int, int] = Field((4, 12), description="Range of k tried by `k: auto` (inclusive). It starts "
                                     "at 4: on text the silhouette peaks at 2 by a hair, and 2 segments say little.")
    algorithm: Literal["kmeans", "hdbscan"] = Field("kmeans", description="k-means, or HDBSCAN (density; "
                                                    "finds k itself and flags noise as outliers).")
    seed: int = Field(0, description="Same input and seed give the same segments.")
    sample_size: int = Field(50_000, ge=100, description="Records fitted on when there are more than "
                             "`minibatch_threshold` (the rest are assigned).")
    minibatch_threshold: int = Field(50_000, ge=100, description="Past this many records, fit a sample with "
                                     "mini-batch k-means.")
    labels_field: str | None = Field(None, description="A known category column: the step reports NMI and ARI "
                                     "of the segments against it.")
    output: str = Field("segment", description="Field receiving the segment id (`<output>_score`, "
                        "`<output>_distance`, `<output>_outlier` are set too).")

    @field_validator("k")
    @classmethod
    def _k(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 2:
            raise ValueError("k must be at least 2 (or `auto`)")
        return v

    @model_validator(mode="after")
    def _range(self) -> ClusterConfig:
        lo, hi = self.k_range
        if not 2 <= lo <= hi:
            raise ValueError(f"k_range must be [low, high] with 2 <= low <= high; got [{lo}, {hi}]")
        if self.algorithm == "hdbscan" and self.k != "auto":
            raise ValueError("algorithm hdbscan finds the number of segments itself: leave k as `auto`")
        return self

    def weights(self) -> dict[str, float]:
        return dict(self.numeric) if isinstance(self.numeric, dict) else {f: 1.0 for f in self.numeric}


@register_step("cluster")
class ClusterStep(Step):
    Config = ClusterConfig
    scope = "dataset"
    produces = "assignments"
    wants: ClassVar[dict[str, str]] = {"vectors": "vectors"}

    def provides(self, kind: str) -> str:
        return self.id  # downstream steps read this step's whole output

    @property
    def _field(self) -> str:
        return str(self.config.vectors or "embedding")

    def _features(self, ctx: StepContext, batch: list[Record], builder: Any
                  ) -> tuple[list[Record], np.ndarray, list[tuple[Record, str]]]:
        ok, vectors, bad = vectors_of(ctx, batch, self._field)
        if not ok:
            return ok, vectors, bad
        return ok, builder.transform(vectors, self._numerics(ok)), bad

    def _numerics(self, batch: list[Record]) -> list[list[Any]] | None:
        fields = list(self.config.weights())
        return [[r.get(f) for f in fields] for r in batch] if fields else None

    def fit(self, data: DatasetView, ctx: StepContext) -> dict[str, Any]:
        from matcha.ml.segment import FeatureBuilder, fit_segmenter

        cfg = self.config
        builder = FeatureBuilder(list(cfg.weights()), cfg.weights())
        n = data.count
        keep = n if n <= cfg.minibatch_threshold else min(cfg.sample_size, n)
        chosen = _positions(n, keep, cfg.seed)
        raw: list[np.ndarray] = []
        nums: list[list[Any]] = []
        position = 0
        for batch in data.batches(fields=[self._field, *cfg.weights()]):
            ok, vectors, _bad = vectors_of(ctx, batch, self._field)
            if ok:
                builder.partial_fit(vectors, self._numerics(ok))
            take = _taken(chosen, position, len(batch))
            by_id = {r["id"]: i for i, r in enumerate(ok)}
            rows = []
            for j in take:
                i = by_id.get(batch[j]["id"])
                if i is not None:
                    rows.append(i)
                    if cfg.numeric:
                        nums.append([batch[j].get(f) for f in cfg.weights()])
            if rows:
                # a copy of the sampled rows: a view would keep the whole batch's matrix alive, and
                # with most batches holding a sampled record, every vector of the dataset (measured:
                # 2.1 GB of RSS at 1,000,000 records before this)
                raw.append(vectors[rows])
            position += len(batch)
        sampled = sum(len(r) for r in raw)
        if sampled < 2:
            raise ValueError(f"only {sampled} record(s) with a vector in field '{self._field}': nothing to cluster")
        sample = builder.transform(np.concatenate(raw), nums if cfg.numeric else None)
        k: Any = cfg.k
        if isinstance(k, int) and k > len(sample):
            raise ValueError(f"k is {k} but there are only {len(sample)} records with a vector")
        high = max(2, min(cfg.k_range[1], len(sample) - 1))  # a small input narrows the range tried
        segmenter = fit_segmenter(
            lambda: iter([sample]), len(sample), k=k, k_range=(min(cfg.k_range[0], high), high),
            algorithm=cfg.algorithm, seed=cfg.seed, sample_size=len(sample),
            minibatch_threshold=len(sample) - 1 if keep < n else len(sample))
        return {"segmenter": segmenter.to_state(), "features": builder.to_state(), "records": n,
                "vectors": self._field}

    def reads(self) -> list[str] | None:
        return [self._field, *self.config.weights()]

    def warm_up(self, ctx: StepContext) -> None:
        from matcha.ml.segment import FeatureBuilder, Segmenter

        if ctx.state is not None:
            self._segmenter = Segmenter.from_state(ctx.state["segmenter"])
            self._builder = _builder_from(FeatureBuilder, ctx.state["features"])

    def process(self, batch: list[Record], ctx: StepContext) -> BatchOutcome:
        ok, features, bad = self._features(ctx, batch, self._builder)
        if ok:
            a = self._segmenter.assign(features)
            out = self.config.output
            for rec, seg, score, dist, outlier in zip(ok, a.labels.tolist(), a.scores.tolist(),
                                                      a.distances.tolist(), a.outliers.tolist(), strict=True):
                rec[out] = seg
                rec[f"{out}_score"] = round(score, 4)
                rec[f"{out}_distance"] = round(dist, 5)
                rec[f"{out}_outlier"] = outlier
        return BatchOutcome(out=ok, quarantined=bad)

    def summarize(self, output: DatasetView, ctx: StepContext) -> dict[str, Any]:
        from matcha.ml.segment import Agreement

        state = ctx.state or {}
        seg = state.get("segmenter", {})
        figures: dict[str, Any] = {"k": seg.get("k"), "silhouette": _round(seg.get("silhouette"))}
        if seg.get("k_scores"):
            figures["k_scores"] = {str(k): round(s, 4) for k, s in seg["k_scores"]}
        out, label = self.config.output, self.config.labels_field
        agreement = Agreement()
        outliers = 0
        read = [f"{out}_outlier", *([label] if label else [])]
        for batch in output.batches(fields=read):
            outliers += sum(1 for r in batch if r.get(f"{out}_outlier"))
            if label:
                pairs = [(str(r.get(label)), r[out]) for r in batch if r.get(label) not in (None, "")]
                if pairs:
                    agreement.add([p[0] for p in pairs], [p[1] for p in pairs])
        figures["outliers"] = outliers
        if isinstance(figures["silhouette"], float) and figures["silhouette"] < WEAK_SILHOUETTE:
            log.warning("segments overlap a lot", step=self.id, silhouette=figures["silhouette"],
                            hint="read them as broad tendencies; with k: auto, k_range or numeric weights "
                            "change what is found")
        if label and agreement.n:
            figures.update(labels_field=label, nmi=round(agreement.nmi(), 4), ari=round(agreement.ari(), 4))
        return figures


def _builder_from(cls: Any, state: dict[str, Any]) -> Any:
    """A fitted FeatureBuilder from a saved state (states saved before the builder had its own
    ``to_state`` named the numeric fields ``fields``)."""
    if "fields" in state and "numeric_fields" not in state:
        state = {**state, "numeric_fields": state["fields"]}
    return cls.from_state(state)


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def _positions(n: int, keep: int, seed: int) -> np.ndarray:
    """The positions (sorted) of a seeded sample of ``keep`` out of ``n`` records."""
    if keep >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, 7]).choice(n, size=keep, replace=False))


def _taken(chosen: np.ndarray, start: int, length: int) -> Iterator[int]:
    lo, hi = np.searchsorted(chosen, [start, start + length])
    return (int(p) - start for p in chosen[lo:hi])
