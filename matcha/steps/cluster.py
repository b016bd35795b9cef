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

from matcha.steps.base import (
    BatchOutcome,
    ColumnOutcome,
    Columns,
    DatasetView,
    Record,
    Step,
    StepConfig,
    StepContext,
    register_step,
)
from matcha.steps.vectors import vectors_at

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
    columnar = True

    def provides(self, kind: str) -> str:
        return self.id  # downstream steps read this step's whole output

    @property
    def _field(self) -> str:
        return str(self.config.vectors or "embedding")

    def _numerics(self, batch: Columns, rows: list[int]) -> list[list[Any]] | None:
        fields = list(self.config.weights())
        if not fields:
            return None
        cols = [batch[f] for f in fields]
        return [[col[i] for col in cols] for i in rows]

    def fit(self, data: DatasetView, ctx: StepContext) -> dict[str, Any]:
        from matcha.ml.segment import FeatureBuilder, fit_segmenter

        cfg = self.config
        builder = FeatureBuilder(list(cfg.weights()), cfg.weights())
        n = data.count
        keep = n if n <= cfg.minibatch_threshold else min(cfg.sample_size, n)
        chosen = _positions(n, keep, cfg.seed)
        # the sample's vector references and numbers: one column pass, vectors read for the sample only
        refs: list[Any] = []
        nums: list[list[Any]] = []
        seqs: list[int] | None = []  # where the sampled records are in the store (for the map)
        position = 0
        for batch in data.columns([self._field, *cfg.weights()]):
            take = list(_taken(chosen, position, len(batch)))
            position += len(batch)
            if take:
                column = batch[self._field]
                refs += [column[j] for j in take]
                nums += self._numerics(batch, take) or []
                seqs = None if seqs is None or batch.seqs is None else seqs + [int(batch.seqs[j]) for j in take]
        ok, vectors, _bad = vectors_at(ctx, refs, self._field)
        if len(ok) < 2:
            raise ValueError(f"only {len(ok)} record(s) with a vector in field '{self._field}': nothing to cluster")
        numerics = [nums[i] for i in ok] if cfg.numeric else None
        # standardised on the sample (every record up to `minibatch_threshold`)
        builder.partial_fit(vectors, numerics)
        sample = builder.transform(vectors, numerics)
        k: Any = cfg.k
        if isinstance(k, int) and k > len(sample):
            raise ValueError(f"k is {k} but there are only {len(sample)} records with a vector")
        high = max(2, min(cfg.k_range[1], len(sample) - 1))  # a small input narrows the range tried
        segmenter = fit_segmenter(
            lambda: iter([sample]), len(sample), k=k, k_range=(min(cfg.k_range[0], high), high),
            algorithm=cfg.algorithm, seed=cfg.seed, sample_size=len(sample),
            minibatch_threshold=len(sample) - 1 if keep < n else len(sample))
        state = {"segmenter": segmenter.to_state(), "features": builder.to_state(), "records": n,
                 "vectors": self._field}
        if seqs is not None:
            state["map"] = _map_sample(segmenter, sample, [seqs[i] for i in ok], cfg.seed)
        return state

    def reads(self) -> list[str] | None:
        return [self._field, *self.config.weights()]

    def warm_up(self, ctx: StepContext) -> None:
        from matcha.ml.segment import FeatureBuilder, Segmenter

        if ctx.state is not None:
            self._segmenter = Segmenter.from_state(ctx.state["segmenter"])
            self._builder = _builder_from(FeatureBuilder, ctx.state["features"])

    def process_columns(self, batch: Columns, ctx: StepContext) -> ColumnOutcome:
        ok, vectors, bad = vectors_at(ctx, batch[self._field], self._field)
        out = self.config.output
        n = len(batch)
        fields: dict[str, list[Any]] = {out: [None] * n, f"{out}_score": [None] * n,
                                         f"{out}_distance": [None] * n, f"{out}_outlier": [None] * n}
        if ok:
            a = self._segmenter.assign(self._builder.transform(vectors, self._numerics(batch, ok)))
            for name, values in ((out, a.labels.tolist()), (f"{out}_score", np.round(a.scores, 4).tolist()),
                                 (f"{out}_distance", np.round(a.distances, 5).tolist()),
                                 (f"{out}_outlier", a.outliers.tolist())):
                if len(ok) == n:  # every record had a vector (the usual case)
                    fields[name] = values
                    continue
                column = fields[name]
                for i, v in zip(ok, values, strict=True):
                    column[i] = v
        return ColumnOutcome(fields, dict(bad))

    def process(self, batch: list[Record], ctx: StepContext) -> BatchOutcome:
        result = self.process_columns(Columns.of_records(batch, self.reads() or []), ctx)
        outcome = BatchOutcome()
        for i, rec in enumerate(batch):
            if i in result.quarantined:
                outcome.quarantined.append((rec, result.quarantined[i]))
                continue
            for name, values in result.fields.items():
                rec[name] = values[i]
            outcome.out.append(rec)
        return outcome

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
        for batch in output.columns([out, f"{out}_outlier", *([label] if label else [])]):
            outliers += sum(1 for flag in batch[f"{out}_outlier"] if flag)
            if label:
                pairs = [(str(known), s) for known, s in zip(batch[label], batch[out], strict=True)
                         if known not in (None, "")]
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


MAP_POINTS = 5000  # the most a report draws (its `map_points`)


def _map_sample(segmenter: Any, sample: np.ndarray, seqs: list[int], seed: int) -> dict[str, Any]:
    """A seeded sample of the fitted records projected to 2-D (PCA of the features the segments
    were found on), with their segments as ``process`` gives them: the report's map, without a
    pass over every record to find them again. ``seqs`` say where they are in the store."""
    from sklearn.decomposition import PCA

    rows = np.sort(np.random.default_rng([seed, 11]).permutation(len(sample))[:MAP_POINTS])
    order = np.random.default_rng([seed, 12]).permutation(len(rows))  # a report keeps the first map_points
    X = sample[rows]
    xy = PCA(n_components=2, random_state=seed).fit_transform(X) if len(rows) >= 3 else np.zeros((len(rows), 2))
    a = segmenter.assign(X)
    return {"seqs": [seqs[i] for i in rows.tolist()], "x": np.round(xy[:, 0], 5).tolist(),
            "y": np.round(xy[:, 1], 5).tolist(), "segment": a.labels.tolist(), "outlier": a.outliers.tolist(),
            "order": order.tolist()}


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
