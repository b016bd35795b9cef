"""Fixtures for HTML pages Matcha writes: a real headless Chromium, and a sample segmentation report.

``chromium`` is Debian's browser (apt ``chromium``) driven by Playwright; ``playwright install`` cannot
download browsers on our machines. ``recorded_page`` is a fresh page that records every request it
makes, so a test can assert that nothing leaves the page::

    def test_offline(recorded_page):
        recorded_page.open(path)               # a file:// URL
        assert recorded_page.requests_other_than(path.as_uri()) == []

The browser is module-scoped: Playwright's sync API keeps its own event loop alive, which must not
outlive the module into tests that run asyncio themselves.
"""

from __future__ import annotations

import csv
import random
import statistics
from datetime import UTC, datetime
from pathlib import Path

import pytest
from browser import RecordedPage, chromium, recorded_page  # noqa: F401 - fixtures shared with tests/serve

from matcha.report import MapPoint, ReportQuality, ReportSegment, SegmentReport

REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------ sample report

# What the pipeline's naming step might write for each latent topic of examples/data/customers.csv.
SAMPLE_SEGMENTS = {
    "delivery": ("Late or damaged deliveries",
                 "Recent, mostly one-off buyers whose parcel arrived late, damaged or not at all. They want "
                 "a date or a replacement, fast.",
                 ["colis", "parcel", "livraison", "tracking", "delivered", "carton", "courier", "retard"]),
    "deals": ("Deal hunters",
              "Frequent buyers of small baskets who watch prices, promo codes and flash sales closely.",
              ["code promo", "discount", "soldes", "sale", "prix", "free delivery", "flash", "voucher"]),
    "loyal": ("Loyal fans of product quality",
              "Long-standing customers who order often, spend the most and praise the finish and durability.",
              ["qualité", "quality", "years", "merci", "recommend", "fidèle", "collection", "lasts"]),
    "service": ("Refunds and customer service",
                "Customers chasing a refund or an answer; several threaten to escalate to their bank or a "
                "mediator.",
                ["remboursement", "refund", "service client", "agent", "ticket", "reply", "dossier", "bank"]),
    "ethics": ("Sustainability questions",
               "Customers asking where products come from and why there is so much packaging.",
               ["plastique", "packaging", "recycled", "origine", "carbon", "emballage", "label", "repair"]),
    "sizing": ("Sizing and returns",
               "Clothing buyers for whom the size guide did not work; they want an exchange or a refund.",
               ["taille", "size", "échange", "return", "guide", "exchange", "trop petit", "fit"]),
}
NUMERIC_FIELDS = ["orders", "revenue", "days_since_last_order"]


def _centres(topics: list[str], rng: random.Random) -> dict[str, tuple[float, float]]:
    return {t: (4 * (i % 3) + rng.uniform(-0.6, 0.6), 3.4 * (i // 3) + rng.uniform(-0.6, 0.6))
            for i, t in enumerate(topics)}


def build_sample_report() -> SegmentReport:
    """A report on examples/data/customers.csv with the known topics as segments.

    Texts and numbers are the real example data; the 2-D positions are drawn around one centre per
    topic, and the quality figures are illustrative: the real ones come from the pipeline.
    """
    with open(REPO / "examples" / "data" / "customers.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    rng = random.Random(7)
    by_topic: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_topic.setdefault(row["topic"], []).append(row)
    topics = sorted(by_topic, key=lambda t: -len(by_topic[t]))
    ids = {t: i + 1 for i, t in enumerate(topics)}
    centres = _centres(topics, rng)
    overall = {f: statistics.fmean(float(r[f]) for r in rows) for f in NUMERIC_FIELDS}

    points, outliers = [], {t: 0 for t in topics}
    for row in rows:
        topic = row["topic"]
        if len(row["feedback"]) < 25:  # very short messages fit nowhere
            outliers[topic] += 1
            points.append(MapPoint(x=rng.uniform(-1.5, 9.5), y=rng.uniform(-1.5, 5), segment=-1,
                                   label=row["feedback"]))
            continue
        cx, cy = centres[topic]
        points.append(MapPoint(x=rng.gauss(cx, 0.75), y=rng.gauss(cy, 0.65), segment=ids[topic],
                               label=row["feedback"][:80]))
    n_outliers = sum(outliers.values())
    segments = []
    for topic in topics:
        name, brief, terms = SAMPLE_SEGMENTS[topic]
        members = by_topic[topic]
        size = len(members) - outliers[topic]
        examples = [r["feedback"] for r in members if 70 <= len(r["feedback"]) <= 170][:3]
        segments.append(ReportSegment(
            id=ids[topic], name=name, brief=brief, size=size, share=size / len(rows),
            keywords=[(term, round(0.42 - 0.04 * i, 2)) for i, term in enumerate(terms)], examples=examples,
            numeric_profile=[(f, statistics.fmean(float(r[f]) for r in members), overall[f]) for f in NUMERIC_FIELDS],
            outliers=0))
    quality = ReportQuality(k=len(topics), k_selection="best silhouette over k = 2 to 10",
                            algorithm="k-means on multilingual sentence embeddings (sample figures)",
                            silhouette=0.11, silhouette_by_k={2: 0.06, 3: 0.07, 4: 0.08, 5: 0.1, 6: 0.11, 7: 0.1,
                                                              8: 0.09, 9: 0.09, 10: 0.08},
                            labels_field="topic", nmi=0.58, ari=0.41)
    return SegmentReport(title="Customer feedback segments", pipeline="segment-customers", run_id="r-20261123-0001",
                         created_at=datetime(2026, 11, 23, 14, 5, tzinfo=UTC), total_records=len(rows),
                         outliers=n_outliers, segments=segments, points=points, quality=quality,
                         numeric_fields=NUMERIC_FIELDS)


@pytest.fixture
def sample_report() -> SegmentReport:
    return build_sample_report()
