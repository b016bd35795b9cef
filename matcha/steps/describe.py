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

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from matcha.models.base import Generator
from matcha.steps.base import BatchOutcome, DatasetView, Record, Step, StepConfig, StepContext, register_step
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
        words = KeywordCollector(texts_per_segment=cfg.texts_per_segment, seed=cfg.seed)
        closest = SmallestPerSegment(cfg.examples)
        sizes: dict[int, int] = {}
        outliers: dict[int, int] = {}
        sums = {f: {} for f in cfg.numeric}  # type: dict[str, dict[int, list[float]]]
        total = 0
        seg = cfg.segment
        read = [seg, f"{seg}_outlier", f"{seg}_distance", f"{seg}_score", cfg.text, *cfg.numeric]
        for batch in data.batches(fields=read):
            recs = [r for r in batch if isinstance(r.get(cfg.segment), int)]
            if not recs:
                continue
            segs = np.array([r[cfg.segment] for r in recs])
            total += len(recs)
            for s, c in zip(*(a.tolist() for a in np.unique(segs, return_counts=True)), strict=True):
                sizes[s] = sizes.get(s, 0) + c
            for r in recs:
                if r.get(f"{cfg.segment}_outlier"):
                    outliers[r[cfg.segment]] = outliers.get(r[cfg.segment], 0) + 1
            texts = [r.get(cfg.text) if isinstance(r.get(cfg.text), str) else None for r in recs]
            words.add(segs, texts)
            dist = [r.get(f"{cfg.segment}_distance", 1.0 - float(r.get(f"{cfg.segment}_score") or 0)) for r in recs]
            closest.add(segs, dist, recs)  # the records themselves: only the few kept are read later
            for f in cfg.numeric:
                for s, r in zip(segs.tolist(), recs, strict=True):
                    v = _number(r.get(f))
                    if v is not None:
                        acc = sums[f].setdefault(s, [0.0, 0])
                        acc[0] += v
                        acc[1] += 1
        keywords = words.keywords(cfg.keywords)
        segments = []
        for s in sorted(sizes):
            numeric = []
            for f in cfg.numeric:
                seg_sum, seg_n = sums[f].get(s, [0.0, 0])
                all_sum = sum(v[0] for v in sums[f].values())
                all_n = sum(v[1] for v in sums[f].values())
                numeric.append({"field": f, "mean": seg_sum / seg_n if seg_n else None,
                                "overall": all_sum / all_n if all_n else None})
            segments.append({
                "segment": s, "size": sizes[s], "share": sizes[s] / total, "outliers": outliers.get(s, 0),
                "keywords": [[t, round(sc, 4)] for t, sc in keywords.get(s, [])],
                "examples": [_text(rec.get(cfg.text))[:400] for _, rec in closest.get(s)],
                "example_ids": [rec["id"] for _, rec in closest.get(s)],
                "numeric": numeric,
            })
        return {"total": total, "segments": segments}

    def make_records(self, ctx: StepContext) -> list[Record]:
        assert ctx.state is not None
        return [{"id": f"segment-{s['segment']}", **s} for s in ctx.state["segments"]]

    def reads(self) -> list[str] | None:
        return [self.config.segment]  # to group; the records it makes are whole

    def group_of(self, batch: list[Record], ctx: StepContext) -> list[str | None]:
        seg = self.config.segment
        return [f"segment-{r[seg]}" if isinstance(r.get(seg), int) else None for r in batch]

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


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _number(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None
