"""``report``: a self-contained HTML report of the segments, stored as an artifact of the run.

A dataset-scoped step over the segment records of ``describe_segments``. It reads, as side inputs,
the output of the ``cluster`` step (``records``, default the nearest upstream one) and what that
step learned (k, silhouette per k, NMI/ARI against a known column, and the map: a seeded sample of
at most 5,000 of the records it fitted on, projected to 2-D with PCA and assigned to their
segments while it fitted, so the report only reads their texts). With ``vectors`` naming another
field than the one the cluster step used, the report draws ``map_points`` records itself and
projects their vectors. The page is stored once with its sha256 (``matcha artifacts RUN``); each
segment record passes on with a ``report`` reference, so the messages written next can cite it.
The report stays on the machine unless a pipeline routes it through approval and a publisher like
any content.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from matcha.steps.base import BatchOutcome, DatasetView, Record, Step, StepConfig, StepContext, register_step
from matcha.steps.vectors import vectors_at


class ReportConfig(StepConfig):
    title: str = Field("Customer segments", description="Title of the report.")
    name: str = Field("segments.html", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
                      description="Artifact name of the report.")
    records: str | None = Field(None, description="Step whose output holds every record with its segment "
                                "(default: the nearest upstream `cluster` step).")
    vectors: str | None = Field(None, description="Field of those records holding their vectors, for the map "
                                "(default: the one the cluster step used).")
    text: str = Field("text", description="Field shown when hovering a point of the map.")
    map_points: int = Field(3000, ge=10, le=5000, description="Records drawn on the map (a seeded sample).")
    record_noun: str = Field("customers", description="What the records are, in the plural.")
    seed: int = Field(0, description="Seed of the map sample when the report draws it itself (`vectors` set to "
                      "another field than the cluster step's; otherwise the cluster step's sample and seed).")


@register_step("report")
class ReportStep(Step):
    Config = ReportConfig
    scope = "dataset"
    wants: ClassVar[dict[str, str]] = {"records": "assignments"}

    def fit(self, data: DatasetView, ctx: StepContext) -> dict[str, Any]:
        from matcha.report import SegmentReport

        segments = [rec for batch in data.batches() for rec in batch]
        source = str(self.config.records)
        learned = ctx.state_of(source) or {}
        figures = ctx.store.step_counts(ctx.run_id, source, []).extra
        report = SegmentReport(
            title=self.config.title, pipeline=ctx.pipeline, run_id=ctx.run_id,
            created_at=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            total_records=sum(int(s.get("size") or 0) for s in segments),
            outliers=sum(int(s.get("outliers") or 0) for s in segments),
            segments=[_segment(s) for s in segments],
            points=self._map(ctx, source, {s["segment"] for s in segments},
                             self.config.vectors or learned.get("vectors") or "embedding", learned),
            quality=_quality(learned.get("segmenter", {}), figures),
            numeric_fields=[n["field"] for n in (segments[0].get("numeric") or [])] if segments else [],
            record_noun=self.config.record_noun)
        from matcha.report import render_segment_report

        html = render_segment_report(report).encode("utf-8")
        artifact = ctx.save_artifact(self.config.name, html, "text/html")
        return {"artifact": artifact.name, "sha256": artifact.sha256, "path": str(artifact.path)}

    def _map(self, ctx: StepContext, source: str, known: set[int], field: str, learned: dict[str, Any]) -> list[Any]:
        from sklearn.decomposition import PCA

        from matcha.report import MapPoint

        drawn = learned.get("map")
        if drawn and field == learned.get("vectors"):
            return self._drawn_map(ctx, source, known, drawn)

        view = ctx.view(source)
        n = view.count
        rng = np.random.default_rng([self.config.seed, 11])
        chosen = np.sort(rng.choice(n, size=min(n, self.config.map_points), replace=False)) if n else \
            np.zeros(0, dtype=np.int64)
        text = str(self.config.text)
        picked: dict[str, list[Any]] = {field: [], "segment": [], "segment_outlier": [], text: [], "ids": []}
        position = 0
        for batch in view.columns([field, "segment", "segment_outlier", text]):
            lo, hi = np.searchsorted(chosen, [position, position + len(batch)])
            take = (chosen[lo:hi] - position).tolist()
            position += len(batch)
            if take:
                for name in (field, "segment", "segment_outlier", text):
                    column = batch[name]
                    picked[name] += [column[j] for j in take]
                # a record without text is labelled by its id (the ids are read only then)
                picked["ids"] += [None if batch[text][j] else batch.ids[j] for j in take]
        ok, matrix, _ = vectors_at(ctx, picked[field], field)
        vectors = list(matrix) if ok else []
        if len(vectors) < 3:
            return []
        X = np.vstack(vectors)
        X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
        xy = PCA(n_components=2, random_state=self.config.seed).fit_transform(X)
        points = []
        for i, (x, y) in zip(ok, xy.tolist(), strict=True):
            seg = picked["segment"][i]
            seg = seg if seg in known and not picked["segment_outlier"][i] else -1
            label = str(picked[text][i] or picked["ids"][i])[:120]
            points.append(MapPoint(x=float(x), y=float(y), segment=int(seg), label=label))
        return points

    def _drawn_map(self, ctx: StepContext, source: str, known: set[int], drawn: dict[str, Any]) -> list[Any]:
        """The map from the sample the cluster step drew, projected and assigned while it fitted:
        one pass reads the texts of those records only."""
        from matcha.report import MapPoint

        keep = sorted(drawn["order"][: self.config.map_points])
        seqs = np.asarray([drawn["seqs"][i] for i in keep], dtype=np.int64)
        text = str(self.config.text)
        labels: dict[int, str] = {}
        for batch in ctx.view(source).columns([text]):
            hit = np.flatnonzero(np.isin(batch.seqs, seqs)).tolist()
            column = batch[text]
            for j in hit:
                labels[int(batch.seqs[j])] = str(column[j] or batch.ids[j])[:120]
        points = []
        for i in keep:
            seq = drawn["seqs"][i]
            if seq not in labels:
                continue  # not passed on by the cluster step (quarantined)
            seg = drawn["segment"][i]
            seg = seg if seg in known and not drawn["outlier"][i] else -1
            points.append(MapPoint(x=float(drawn["x"][i]), y=float(drawn["y"][i]), segment=int(seg),
                                   label=labels[seq]))
        return points

    def process(self, batch: list[Record], ctx: StepContext) -> BatchOutcome:
        assert ctx.state is not None
        for rec in batch:
            rec["report"] = {"artifact": ctx.state["artifact"], "sha256": ctx.state["sha256"]}
        return BatchOutcome(out=batch)


def _segment(s: Record) -> Any:
    from matcha.report import ReportSegment

    return ReportSegment(
        id=int(s["segment"]), size=int(s["size"]), share=float(s["share"]), name=s.get("name"), brief=s.get("brief"),
        keywords=[(str(k), float(v)) for k, v in s.get("keywords") or []],
        examples=[str(e) for e in s.get("examples") or []],
        numeric_profile=[(n["field"], float(n["mean"]), float(n["overall"])) for n in s.get("numeric") or []
                         if n.get("mean") is not None and n.get("overall") is not None],
        outliers=int(s.get("outliers") or 0))


def _quality(seg: dict[str, Any], figures: dict[str, Any]) -> Any:
    from matcha.report import ReportQuality

    scores = {int(k): float(v) for k, v in seg.get("k_scores") or []}
    algorithm = "HDBSCAN (density)" if seg.get("algorithm") == "hdbscan" else "k-means"
    if scores:
        selection = f"best silhouette over k = {min(scores)}..{max(scores)}"
    elif seg.get("algorithm") == "hdbscan":
        selection = "found by HDBSCAN"
    else:
        selection = "fixed in the pipeline"
    return ReportQuality(
        k=int(seg.get("k") or 0), k_selection=selection, algorithm=f"{algorithm} on text embeddings",
        silhouette=seg.get("silhouette"), silhouette_by_k=scores, labels_field=figures.get("labels_field"),
        nmi=figures.get("nmi"), ari=figures.get("ari"))
