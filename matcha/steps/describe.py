"""``describe_segments``: one record per segment, saying who is in it.

An aggregating step: ``fit`` streams the records once and keeps, per segment, its size, the means of
the numeric fields, a bounded seeded sample of member texts for keywords (class-based TF-IDF with
French and English stop words) and the members closest to the centre. ``make_records`` turns that
into one record per segment (``id: segment-N``); every input record is grouped into its segment's
record, so ``Run.members("segment-2")`` lists who is in it. With a generator ``model``, each segment
record also gets a short ``name`` and a one-paragraph ``brief`` written from its keywords and
examples (JSON-schema output, cached like every model call: a resume does not pay twice).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from matcha.models.base import Generator
from matcha.steps.base import (
    BatchOutcome,
    Columns,
    DatasetView,
    Record,
    Step,
    StepConfig,
    StepContext,
    register_step,
)
from matcha.steps.modelcalls import generate_cached

# Plain completions with one worked example: small local models (Gemma 3 270M, the offline default)
# follow a pattern far better than a JSON schema, whose grammar they fill with noise.
PROMPT = """Segments of an online shop's customers, each described for an account manager from its keywords
and typical messages.

Segment: 180 customers (15%). Keywords: promo, code, discount, cheaper, price.
Typical messages:
- Is there a discount code this week? I always wait for the sales.
- Trop cher sans promo, j'attends les soldes.
Name: Deal hunters
Brief: Price-sensitive customers who wait for promotions. Address them with clear offers and loyalty rewards.

Segment: {size} customers ({share:.0%}). Keywords: {keywords}.
{numeric}Typical messages:
{examples}
Name:"""
EXAMPLE_NAME = "deal hunters"
EXAMPLE_BRIEF = "price-sensitive customers who wait for promotions"


class DescribeConfig(StepConfig):
    segment: str = Field("segment", description="Field holding each record's segment (from `cluster`).")
    text: str = Field("text", description="Field holding the text keywords and examples come from.")
    numeric: list[str] = Field(default_factory=list, description="Numeric fields profiled per segment "
                               "(segment mean against overall mean).")
    keywords: int = Field(10, ge=1, le=50, description="Keywords kept per segment.")
    examples: int = Field(3, ge=1, le=20, description="Members closest to the centre shown as examples.")
    texts_per_segment: int = Field(2000, ge=50, description="Member texts sampled per segment for keywords.")
    model: str | None = Field(None, description="A generator model: writes a short name and a brief per segment.")
    max_tokens: int = Field(200, ge=16, le=4096, description="Token bound for each name and brief.")
    seed: int = Field(0, description="Seed of the keyword sample.")


@register_step("describe_segments")
class DescribeSegmentsStep(Step):
    Config = DescribeConfig
    scope = "dataset"
    aggregates = True
    produces = "segments"
    references: ClassVar[dict[str, str]] = {"model": "models"}
    model_capability = "generate"

    def fit(self, data: DatasetView, ctx: StepContext) -> dict[str, Any]:
        from matcha.ml.keywords import KeywordCollector, SmallestPerSegment

        cfg = self.config
        seg = cfg.segment
        words = KeywordCollector(texts_per_segment=cfg.texts_per_segment, seed=cfg.seed)
        closest = SmallestPerSegment(cfg.examples)
        tally = _Tally(cfg.numeric)
        read = [seg, f"{seg}_outlier", f"{seg}_distance", f"{seg}_score", cfg.text, *cfg.numeric]
        for batch in data.columns(read):
            column = batch[seg]
            rows = [i for i, s in enumerate(column) if isinstance(s, int)]
            if not rows:
                continue
            pick = _picker(rows, len(batch))
            segs = np.asarray(pick(column), dtype=np.int64)
            texts = [t if isinstance(t, str) else None for t in pick(batch[cfg.text])]
            words.add(segs, texts)
            dist = [1.0 - float(s or 0) if d is None else d
                    for d, s in zip(pick(batch[f"{seg}_distance"]), pick(batch[f"{seg}_score"]), strict=True)]
            # the examples: ids and texts of the few kept, read only for candidates
            closest.add(segs, dist, _Examples(batch, rows, texts))
            tally.add(segs, [bool(o) for o in pick(batch[f"{seg}_outlier"])],
                      {f: pick(batch[f]) for f in cfg.numeric})
        keywords = words.keywords(cfg.keywords)
        segments = []
        for s in sorted(tally.sizes):
            segments.append({
                "segment": s, "size": tally.sizes[s], "share": tally.sizes[s] / tally.total,
                "outliers": tally.outliers.get(s, 0),
                "keywords": [[t, round(sc, 4)] for t, sc in keywords.get(s, [])],
                "examples": [text[:400] for _, (_rid, text) in closest.get(s)],
                "example_ids": [rid for _, (rid, _text) in closest.get(s)],
                "numeric": tally.profile(s),
            })
        return {"total": tally.total, "segments": segments}

    def make_records(self, ctx: StepContext) -> list[Record]:
        assert ctx.state is not None
        return [{"id": f"segment-{s['segment']}", **s} for s in ctx.state["segments"]]

    def reads(self) -> list[str] | None:
        return [self.config.segment]  # to group; the records it makes are whole

    def group_of(self, batch: list[Record], ctx: StepContext) -> list[str | None]:
        seg = self.config.segment
        return [f"segment-{r[seg]}" if isinstance(r.get(seg), int) else None for r in batch]

    def group_of_columns(self, batch: Columns, ctx: StepContext) -> list[str | None]:
        return [f"segment-{s}" if isinstance(s, int) else None for s in batch[self.config.segment]]

    def warm_up(self, ctx: StepContext) -> None:
        self._model: Generator | None = None
        if self.config.model:
            model = ctx.models(self.config.model)
            assert isinstance(model, Generator)
            self._model = model

    def process(self, batch: list[Record], ctx: StepContext) -> BatchOutcome:
        if self._model is None:
            for rec in batch:
                rec.setdefault("name", None)
                rec.setdefault("brief", None)
            return BatchOutcome(out=batch)
        prompts = [self._prompt(rec) for rec in batch]
        results = generate_cached(ctx, self._model, prompts, system=None, schema=None,
                                  params={"max_tokens": self.config.max_tokens, "temperature": 0.0,
                                          "stop": ["\nSegment:", "\n\n"]},
                                  concurrency=1, accept=_accept, retries=1)
        out = BatchOutcome()
        taken: set[str] = set()
        for rec, res in zip(batch, results, strict=True):
            if isinstance(res, BaseException):
                # the segment stays: a missing name is not a reason to lose who is in it
                rec["name"], rec["brief"], rec["name_source"] = _keyword_name(rec), None, "keywords"
                rec["description_error"] = f"{type(res).__name__}: {res}"[:300]
            else:
                rec["name"], rec["brief"], rec["name_source"] = _vetted(*_parse(res), rec, taken)
            taken.add(rec["name"].casefold())
            out.out.append(rec)
        return out

    def _prompt(self, rec: Record) -> str:
        numeric = "".join(f"Average {n['field']}: {n['mean']:.1f} (all customers: {n['overall']:.1f})\n"
                          for n in rec.get("numeric", []) if n["mean"] is not None and n["overall"] is not None)
        return PROMPT.format(size=rec["size"], share=rec["share"],
                             keywords=", ".join(k for k, _ in rec["keywords"]) or "(none)",
                             numeric=numeric, examples="\n".join(f"- {e}" for e in rec["examples"]))


def _parse(text: str) -> tuple[str, str | None]:
    """``Name`` (the rest of the first line) and ``Brief`` from a completion of :data:`PROMPT`."""
    first, _, rest = text.strip().partition("\n")
    brief = rest.strip().removeprefix("Brief:").strip() or None
    return first.strip().strip("\"'*").strip()[:60], brief[:600] if brief else None


def _vetted(name: str, brief: str | None, rec: Record, taken: set[str]) -> tuple[str, str | None, str]:
    """The model's name and brief, unless it copied the prompt's example, repeated itself, or gave a
    name another segment already has: then the segment is named by its top keywords. Small local
    models do all three (measured with Gemma 3 270M on the example customers: five of eight
    segments called "Deal hunters")."""
    if brief and (brief.casefold().startswith(EXAMPLE_BRIEF) or _repetitive(brief)):
        brief = None
    if name.casefold() in (EXAMPLE_NAME, *taken) or _repetitive(name):
        return _keyword_name(rec), brief, "keywords"
    return name, brief, "model"


def _repetitive(text: str) -> bool:
    words = text.casefold().split()
    return len(words) >= 12 and len(set(words)) < 0.4 * len(words)


def _keyword_name(rec: Record) -> str:
    words = [k for k, _ in rec.get("keywords") or []][:3]
    return " · ".join(words) if words else f"Segment {rec.get('segment')}"


def _accept(text: str) -> str | None:
    name, brief = _parse(text)
    if len(name) < 2:
        return "no name on the first line"
    if not brief:
        return "no brief after the name"
    return None


def _picker(rows: list[int], n: int) -> Any:
    """Takes the values at ``rows`` from a column (the column itself when that is all of them)."""
    if len(rows) == n:
        return lambda values: values
    return lambda values: [values[i] for i in rows]


class _Examples(Sequence[tuple[str, str]]):
    """The ``(id, text)`` of a batch's rows, made only for those asked for (candidate examples)."""

    def __init__(self, batch: Columns, rows: list[int], texts: list[str | None]):
        self.batch, self.rows, self.texts = batch, rows, texts

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: Any) -> Any:
        return self.batch.ids[self.rows[i]], self.texts[i] or ""


class _Tally:
    """Per segment: size, outliers, and the sum and count of each numeric field (vectorised)."""

    def __init__(self, numeric: list[str]):
        self.total = 0
        self.sizes: dict[int, int] = {}
        self.outliers: dict[int, int] = {}
        self.sums: dict[str, dict[int, list[float]]] = {f: {} for f in numeric}

    def add(self, segs: np.ndarray, outliers: list[bool], numeric: dict[str, list[Any]]) -> None:
        self.total += len(segs)
        labels, inverse, counts = np.unique(segs, return_inverse=True, return_counts=True)
        keys = labels.tolist()
        for s, c in zip(keys, counts.tolist(), strict=True):
            self.sizes[s] = self.sizes.get(s, 0) + c
        flagged = np.bincount(inverse, weights=np.asarray(outliers, dtype=np.float64), minlength=len(keys))
        for s, c in zip(keys, flagged.tolist(), strict=True):
            if c:
                self.outliers[s] = self.outliers.get(s, 0) + int(c)
        for f, values in numeric.items():
            x = _numbers(values)
            present = np.isfinite(x)
            sums = np.bincount(inverse, weights=np.where(present, x, 0.0), minlength=len(keys))
            ns = np.bincount(inverse, weights=present.astype(np.float64), minlength=len(keys))
            for s, total, n in zip(keys, sums.tolist(), ns.tolist(), strict=True):
                acc = self.sums[f].setdefault(s, [0.0, 0])
                acc[0] += total
                acc[1] += int(n)

    def profile(self, s: int) -> list[dict[str, Any]]:
        out = []
        for f, per in self.sums.items():
            seg_sum, seg_n = per.get(s, [0.0, 0])
            all_sum = sum(v[0] for v in per.values())
            all_n = sum(v[1] for v in per.values())
            out.append({"field": f, "mean": seg_sum / seg_n if seg_n else None,
                        "overall": all_sum / all_n if all_n else None})
        return out


def _numbers(values: list[Any]) -> np.ndarray:
    """Values as floats, NaN where not a finite number (numbers, or text holding one)."""
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        x = np.asarray([np.nan if (v := _number(value)) is None else v for value in values], dtype=np.float64)
    return np.where(np.isfinite(x), x, np.nan)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _number(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None
