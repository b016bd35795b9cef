"""The customer segmentation report: typed input, one self-contained HTML page out.

The page is opened on air-gapped machines, so it makes no request of any kind: CSS is inline, the
map and charts are inline SVG drawn here, there is no script, and a Content-Security-Policy
``default-src 'none'`` makes the browser refuse anything external even if a template change
forgot this. Every value reaches the page through Jinja2's autoescaping: record texts are untrusted.

Geometry (map coordinates, bar lengths) and the plain-language readings of the quality figures are
computed here in Python, so the template only lays things out.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jinja2

from matcha.report import _readings as readings

__all__ = ["MAX_POINTS", "MapPoint", "ReportQuality", "ReportSegment", "SegmentReport", "render_segment_report"]

MAX_POINTS = 5_000  # beyond this the page gets heavy (about 200 bytes per point) and the map unreadable
OUTLIER = -1  # segment id of map points that belong to no segment

# Okabe-Ito (minus black and the low-contrast yellow), then Paul Tol's "muted" and "light" sets:
# the first 8 are distinguishable with the common colour-vision deficiencies. No palette keeps 20
# categories apart for everyone, so the map also writes each segment's number at its centre.
PALETTE = (
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#332288", "#999933",
    "#882255", "#44AA99", "#DDCC77", "#117733", "#AA4499", "#88CCEE", "#CC6677", "#EE8866",
    "#77AADD", "#BBCC33", "#FFAABB", "#AAAA00",
)
OUTLIER_COLOUR = "#BBBBBB"
MAP_WIDTH, MAP_MAX_HEIGHT, MAP_PAD = 960.0, 600.0, 24.0
MAX_EXAMPLE_CHARS = 400


@dataclass(kw_only=True)
class MapPoint:
    """One record on the 2-D map, already projected by the caller."""

    x: float
    y: float
    segment: int  # a ReportSegment.id, or -1 for a record that fits no segment
    label: str = ""  # short hover text, e.g. the start of the record's text


@dataclass(kw_only=True)
class ReportSegment:
    """One segment and what describes it."""

    id: int
    size: int
    share: float  # of all records, 0..1
    name: str | None = None  # short name written by an LLM; "Segment <id>" when None
    brief: str | None = None  # one paragraph written by an LLM
    keywords: list[tuple[str, float]] = field(default_factory=list)  # (term, score), best first
    examples: list[str] = field(default_factory=list)  # short representative texts
    numeric_profile: list[tuple[str, float, float]] = field(default_factory=list)  # (field, segment mean, overall mean)
    outliers: int = 0  # records of this segment flagged as outliers


@dataclass(kw_only=True)
class ReportQuality:
    """How good the segmentation is, in figures."""

    k: int  # number of segments
    k_selection: str  # how k was chosen, shown as is: "best silhouette over k = 2..12", "fixed in the pipeline"
    algorithm: str  # e.g. "k-means on multilingual sentence embeddings"
    silhouette: float | None = None  # of the result, -1..1
    silhouette_by_k: dict[int, float] = field(default_factory=dict)  # every k tried
    labels_field: str | None = None  # a known column the segments were compared with
    nmi: float | None = None  # normalized mutual information with labels_field, 0..1
    ari: float | None = None  # adjusted Rand index with labels_field, about -0.5..1 (0 = chance)


@dataclass(kw_only=True)
class SegmentReport:
    """Everything the segmentation report shows."""

    title: str
    pipeline: str
    run_id: str
    created_at: datetime | str  # a datetime is shown in UTC; a string as is
    total_records: int
    outliers: int  # records that fit no segment
    segments: list[ReportSegment]
    points: list[MapPoint]  # at most MAX_POINTS, sampled by the caller
    quality: ReportQuality
    numeric_fields: list[str] = field(default_factory=list)  # the numeric columns profiled per segment
    record_noun: str = "customers"  # what the records are, in the plural, as the reader would say it


def render_segment_report(data: SegmentReport) -> str:
    """Render ``data`` as one self-contained HTML page (no network request, no script).

    Raises ``ValueError`` naming the first inconsistency found (an unknown segment id on a map point,
    too many points, a share outside 0..1, a coordinate that is not a finite number).
    """
    _check(data)
    template = _environment().get_template("segments.html.j2")
    return template.render(**_view(data))


@functools.cache
def _environment() -> jinja2.Environment:
    # autoescape=True for every template, whatever its file name: record texts are untrusted
    return jinja2.Environment(loader=jinja2.PackageLoader("matcha", "data/report"), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _check(data: SegmentReport) -> None:
    ids = [s.id for s in data.segments]
    if len(set(ids)) != len(ids):
        raise ValueError(f"segment ids must be unique, got {ids}")
    if OUTLIER in ids:
        raise ValueError(f"segment id {OUTLIER} is reserved for map points that belong to no segment")
    for s in data.segments:
        if not 0.0 <= s.share <= 1.0:
            raise ValueError(f"segment {s.id}: share must be between 0 and 1 (a fraction), got {s.share}")
    if len(data.points) > MAX_POINTS:
        raise ValueError(f"{len(data.points)} map points: sample at most {MAX_POINTS} before rendering the report")
    known = {*ids, OUTLIER}
    for i, p in enumerate(data.points):
        if p.segment not in known:
            raise ValueError(f"points[{i}] belongs to segment {p.segment}, which is not in segments (ids {ids})")
        if not (math.isfinite(p.x) and math.isfinite(p.y)):
            raise ValueError(f"points[{i}] has a coordinate that is not a finite number: ({p.x}, {p.y})")


# ---------------------------------------------------------------- view model


def fmt(value: float, digits: int | None = None) -> str:
    """A number as a person reads it: thousands separators, fewer decimals as it grows."""
    if digits is None:
        digits = 0 if float(value).is_integer() or abs(value) >= 100 else (1 if abs(value) >= 10 else 2)
    return f"{value:,.{digits}f}".replace("-", "\N{MINUS SIGN}")


def _pct(share: float) -> str:
    return f"{share * 100:.1f}%" if share < 0.995 else f"{share * 100:.0f}%"


def _view(data: SegmentReport) -> dict[str, Any]:
    segments = [_segment_view(s, i) for i, s in enumerate(data.segments)]
    created = data.created_at
    if isinstance(created, datetime):
        created = (created.astimezone(UTC) if created.tzinfo else created).strftime("%Y-%m-%d %H:%M UTC")
    max_share = max((s.share for s in data.segments), default=0.0) or 1.0
    for view, seg in zip(segments, data.segments, strict=True):
        view["bar"] = f"{seg.share / max_share * 100:.1f}%"
    q = data.quality
    return {
        "report": data,
        "created": created,
        "segments": segments,
        "outlier_colour": OUTLIER_COLOUR,
        "map": _map_view(data, {s["id"]: s for s in segments}),
        "chart": _k_chart(q.silhouette_by_k, q.k),
        "readings": readings.quality_readings(data),
        "fmt": fmt,
        "pct": _pct,
    }


def _segment_view(seg: ReportSegment, index: int) -> dict[str, Any]:
    examples = [t if len(t) <= MAX_EXAMPLE_CHARS else t[: MAX_EXAMPLE_CHARS - 1].rstrip() + "…"
                for t in seg.examples]
    return {
        "id": seg.id,
        "css": f"c{index}",  # colour class; by position, so any ids get the palette in order
        "seg": seg,
        "title": seg.name or f"Segment {seg.id}",
        "colour": PALETTE[index % len(PALETTE)],
        "examples": examples,
        "profile": [_profile_row(*row) for row in seg.numeric_profile],
    }


def _profile_row(name: str, mean: float, overall: float) -> dict[str, Any]:
    top = max(abs(mean), abs(overall)) or 1.0
    return {
        "field": name,
        "label": name.replace("_", " "),  # days_since_last_order -> days since last order
        "mean": fmt(mean),
        "overall": fmt(overall),
        "mean_width": f"{abs(mean) / top * 100:.1f}%",
        "overall_width": f"{abs(overall) / top * 100:.1f}%",
        "comparison": readings.compare_to_average(mean, overall),
    }


def _map_view(data: SegmentReport, segments: dict[int, dict[str, Any]]) -> dict[str, Any]:
    pts = data.points
    if not pts:
        return {"points": [], "badges": [], "width": MAP_WIDTH, "height": 240.0, "radius": 4, "has_outliers": False}
    xs, ys = [p.x for p in pts], [p.y for p in pts]
    span_x, span_y = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    # one scale for both axes: distances on the map keep their meaning
    scale = min((MAP_WIDTH - 2 * MAP_PAD) / span_x, (MAP_MAX_HEIGHT - 2 * MAP_PAD) / span_y)
    height = max(240.0, span_y * scale + 2 * MAP_PAD)
    left = (MAP_WIDTH - span_x * scale) / 2
    top = (height - span_y * scale) / 2
    x0, y1 = min(xs), max(ys)
    radius = 5 if len(pts) <= 500 else (4 if len(pts) <= 2_000 else 3)

    drawn: list[dict[str, Any]] = []
    by_segment: dict[int, list[tuple[float, float]]] = {}
    for p in pts:
        cx, cy = left + (p.x - x0) * scale, top + (y1 - p.y) * scale  # SVG's y axis points down
        seg = segments.get(p.segment)
        name = seg["title"] if seg else "No segment (outlier)"
        drawn.append({"cx": f"{cx:.1f}", "cy": f"{cy:.1f}", "segment": p.segment,
                      "css": seg["css"] if seg else "co", "title": f"{name}: {p.label}" if p.label else name})
        if seg:
            by_segment.setdefault(p.segment, []).append((cx, cy))
    # outliers first, so segment points are drawn over them
    drawn.sort(key=lambda d: d["segment"] != OUTLIER)
    badges = []
    for seg_id, coords in by_segment.items():
        bx, by = _median([c[0] for c in coords]), _median([c[1] for c in coords])
        view = segments[seg_id]
        badges.append({"segment": seg_id, "css": view["css"], "x": f"{bx:.1f}", "y": f"{by:.1f}",
                       "title": view["title"]})
    return {"points": drawn, "badges": badges, "width": MAP_WIDTH, "height": round(height, 1), "radius": radius,
            "has_outliers": any(p.segment == OUTLIER for p in pts)}


def _median(values: list[float]) -> float:
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _k_chart(scores: dict[int, float], chosen: int) -> dict[str, Any] | None:
    """Bars of the silhouette for each k tried; the chosen k is highlighted."""
    finite = {k: v for k, v in sorted(scores.items()) if math.isfinite(v)}
    if not finite:
        return None
    width, height, pad_x, pad_top, pad_bottom = 360.0, 170.0, 12.0, 22.0, 26.0
    lo, hi = min(0.0, *finite.values()), max(0.0, *finite.values())
    if hi == lo:
        hi = lo + 1.0
    plot = height - pad_top - pad_bottom

    def y_of(v: float) -> float:
        return pad_top + (hi - v) / (hi - lo) * plot

    slot = (width - 2 * pad_x) / len(finite)
    bar_w = min(36.0, slot * 0.7)
    bars = []
    for i, (k, v) in enumerate(finite.items()):
        x = pad_x + i * slot + (slot - bar_w) / 2
        y_top, y_bottom = sorted((y_of(v), y_of(0.0)))
        bars.append({"k": k, "value": f"{v:.2f}".replace("-", "\N{MINUS SIGN}"), "x": f"{x:.1f}",
                     "y": f"{y_top:.1f}", "w": f"{bar_w:.1f}", "h": f"{max(y_bottom - y_top, 1.0):.1f}",
                     "cx": f"{x + bar_w / 2:.1f}", "label_y": f"{max(y_top - 5, 12):.1f}", "chosen": k == chosen})
    return {"width": width, "height": height, "bars": bars, "zero_y": f"{y_of(0.0):.1f}",
            "axis_y": f"{height - 8:.1f}", "x_end": f"{width - pad_x:.1f}", "x_start": f"{pad_x:.1f}"}
