"""One plain-language sentence per figure, for a reader who is not a data scientist.

The thresholds are rules of thumb, not statistics: they say roughly what a value means for someone
deciding whether to act on the segments. Silhouettes of text segmentations are usually low (0.05 to
0.2), so the wording treats that range as normal overlap rather than failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matcha.report.segments import SegmentReport


def silhouette(value: float | None, noun: str) -> str:
    if value is None:
        return "Not computed for this run."
    if value >= 0.5:
        return f"Segments are clearly separated: most {noun} sit firmly inside their segment."
    if value >= 0.25:
        return "Segments are distinct, with some overlap at their edges."
    if value >= 0.1:
        return ("Segments overlap noticeably, which is usual for free text: the core of each segment is "
                f"meaningful, but {noun} near its edge could belong to a neighbour.")
    if value >= 0:
        return "Segments overlap a lot: read them as broad tendencies rather than firm groups."
    return (f"Many {noun} are closer to another segment than to their own: treat this segmentation with "
            "caution.")


def k_choice(k: int, scores: dict[int, float], noun: str) -> str:
    if not scores:
        return f"The report has {k} segments; no other number of segments was compared."
    tried = sorted(scores)
    best = max(tried, key=lambda n: scores[n])
    if tried == [k]:
        return f"Only one number of segments ({k}) was tried."
    span = f"{tried[0]} to {tried[-1]}"
    if best == k:
        return f"{k} segments separated {noun} best among the numbers of segments tried ({span})."
    if k in scores:
        return (f"The report uses {k} segments; {best} segments separated {noun} slightly better "
                f"({scores[best]:.2f} against {scores[k]:.2f}).")
    return f"The report uses {k} segments; among the numbers tried ({span}), {best} separated {noun} best."


def nmi(value: float, labels: str) -> str:
    lead = f"Compared with the known “{labels}” column, the segments"
    if value >= 0.7:
        return f"{lead} closely follow it."
    if value >= 0.4:
        return f"{lead} partly follow it: some segments match one value, others mix several."
    if value >= 0.2:
        return f"{lead} follow it only loosely."
    return f"{lead} are largely unrelated to it (they may capture something else)."


def ari(value: float, labels: str) -> str:
    if value >= 0.65:
        return f"Customers who share a “{labels}” value are mostly grouped together here too."
    if value >= 0.3:
        return f"Moderate agreement with “{labels}” on who belongs with whom."
    if value >= 0.1:
        return f"Weak agreement with “{labels}” on who belongs with whom."
    return f"Agreement with “{labels}” is close to what a random grouping would give."


def outliers(count: int, total: int, noun: str, drawn_grey: bool) -> str:
    if count == 0:
        return f"All {noun} were placed in a segment."
    share = f" ({count / total * 100:.1f}%)" if total else ""
    grey = " They are drawn in grey on the map." if drawn_grey else ""
    return f"{count:,} {noun}{share} fit no segment well.{grey}"


def compare_to_average(mean: float, overall: float) -> str:
    """``+42% vs average``, ``2.3× the average``, ``about average``."""
    if overall == 0:
        return "about average" if mean == 0 else "average is 0"
    diff = (mean - overall) / abs(overall)
    if abs(diff) < 0.05:
        return "about average"
    if mean / overall >= 2 and overall > 0:
        return f"{mean / overall:.1f}× the average"
    sign = "+" if diff > 0 else "\N{MINUS SIGN}"
    return f"{sign}{abs(diff) * 100:.0f}% vs average"


def quality_readings(data: SegmentReport) -> dict[str, str]:
    q = data.quality
    out = {
        "silhouette": silhouette(q.silhouette, data.record_noun),
        "k": k_choice(q.k, q.silhouette_by_k, data.record_noun),
        "outliers": outliers(data.outliers, data.total_records, data.record_noun,
                             drawn_grey=any(p.segment == -1 for p in data.points)),
    }
    if q.nmi is not None:
        out["nmi"] = nmi(q.nmi, q.labels_field or "labels")
    if q.ari is not None:
        out["ari"] = ari(q.ari, q.labels_field or "labels")
    return out
