"""The segmentation report: what the page contains, that it escapes record texts, that it is offline.

Unit tests read the HTML with the standard library's parser; the integration tests open the written
file in a real headless Chromium and record every request the page makes.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from matcha.report import MAX_POINTS, MapPoint, ReportQuality, ReportSegment, SegmentReport, render_segment_report

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "images" / "segmentation-report.png"
ATTACK = '<script>window.pwned = 1</script><img src="x" onerror="window.pwned = 2">'


class ParsedPage(HTMLParser):
    """Every start tag with its attributes, in document order, and the text."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        """Tags named ``tag`` whose attributes contain the given values (``class_`` matches one class)."""
        want_class = attrs.pop("class_", None)
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())
                and (want_class is None or want_class in a.get("class", "").split())]


def make_report(n_segments: int = 3, points_per_segment: int = 4, **changes: Any) -> SegmentReport:
    segments = [ReportSegment(id=i, name=f"Group {i}", brief=f"About group {i}.", size=points_per_segment,
                              share=1 / n_segments, keywords=[(f"word{i}", 0.5), ("common", 0.1)],
                              examples=[f"Example text of group {i}."],
                              numeric_profile=[("orders", 2.0 * i + 1, 5.0)], outliers=0)
                for i in range(1, n_segments + 1)]
    points = [MapPoint(x=float(i) + j / 10, y=float(j % 3), segment=i, label=f"g{i} p{j}")
              for i in range(1, n_segments + 1) for j in range(points_per_segment)]
    quality = ReportQuality(k=n_segments, k_selection="best silhouette over k = 2 to 5", algorithm="k-means",
                            silhouette=0.3, silhouette_by_k={2: 0.2, 3: 0.3, 4: 0.25, 5: 0.1})
    report = SegmentReport(title="Segments", pipeline="segment-customers", run_id="r1",
                           created_at=datetime(2026, 11, 23, 9, 30, tzinfo=UTC),
                           total_records=n_segments * points_per_segment, outliers=0, segments=segments,
                           points=points, quality=quality, numeric_fields=["orders"])
    return dataclasses.replace(report, **changes)


# ------------------------------------------------------------------ unit


@pytest.mark.unit
def test_every_segment_has_a_card_a_legend_entry_and_a_size_bar() -> None:
    report = make_report(n_segments=5)
    page = ParsedPage(render_segment_report(report))
    for seg in report.segments:
        cards = page.find("article", class_="segment", **{"data-segment": str(seg.id)})
        assert len(cards) == 1, seg.id
        assert cards[0]["id"] == f"segment-{seg.id}"
        assert page.find("li", **{"data-segment": str(seg.id)}), seg.id  # legend and size bar
        assert f"Group {seg.id}" in page.text
        assert f"About group {seg.id}." in page.text
    assert len(page.find("article", class_="segment")) == 5


@pytest.mark.unit
def test_map_comes_first_with_one_circle_per_point() -> None:
    report = make_report(n_segments=4, points_per_segment=25)
    page = ParsedPage(render_segment_report(report))
    sections = [a.get("id") for t, a in page.tags if t == "section"]
    assert sections[0] == "map"
    assert sections == ["map", "sizes", "segments", "quality"]
    first_svg = next(a for t, a in page.tags if t == "svg")
    assert first_svg["id"] == "map-svg"
    assert len(page.find("circle", class_="pt")) == 100
    # each segment's number is written on the map, so colour is not the only cue
    assert len(page.find("g", class_="mark")) == 4


@pytest.mark.unit
def test_untrusted_texts_are_escaped_everywhere() -> None:
    report = make_report()
    report.title = ATTACK
    report.pipeline = ATTACK
    report.segments[0].name = ATTACK
    report.segments[0].brief = ATTACK
    report.segments[0].examples = [ATTACK]
    report.segments[0].keywords = [(ATTACK, 0.9)]
    report.segments[0].numeric_profile = [(ATTACK, 1.0, 2.0)]
    report.points[0].label = "</title>" + ATTACK
    report.quality.labels_field = ATTACK
    report.quality.nmi = 0.5
    html = render_segment_report(report)
    page = ParsedPage(html)
    assert "<script" not in html.lower()
    assert not page.find("img")
    assert not [a for _, a in page.tags if "onerror" in a]
    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt;" in html
    assert any(ATTACK in t for t in page.text)  # shown to the reader as text


@pytest.mark.unit
def test_page_references_nothing_outside_itself() -> None:
    report = make_report(n_segments=20, points_per_segment=3)
    html = render_segment_report(report)
    page = ParsedPage(html)
    assert not re.search(r"(?i)\b(?:https?|ftp|wss?):|//[a-z0-9.-]+\.[a-z]", html), "an absolute URL in the page"
    assert not re.search(r"(?i)@import|url\s*\(|@font-face", html)
    for tag in ("script", "link", "img", "iframe", "object", "embed", "audio", "video", "source", "image", "use"):
        assert not page.find(tag), tag
    for tag, attrs in page.tags:
        assert "src" not in attrs and "srcset" not in attrs, tag
        assert attrs.get("href", "#").startswith("#"), (tag, attrs)  # only links within the page
    csp = page.find("meta", **{"http-equiv": "Content-Security-Policy"})
    assert csp and "default-src 'none'" in csp[0]["content"]


@pytest.mark.unit
def test_a_url_in_a_record_stays_text() -> None:
    report = make_report()
    report.segments[0].examples = ["See https://evil.example/track.png for the photo"]
    page = ParsedPage(render_segment_report(report))
    assert "See https://evil.example/track.png for the photo" in page.text
    assert all(a.get("href", "#").startswith("#") and "src" not in a for _, a in page.tags)


@pytest.mark.unit
def test_twenty_segments_get_twenty_distinct_colours() -> None:
    html = render_segment_report(make_report(n_segments=20, points_per_segment=2))
    colours = re.findall(r"\.c\d+ \{ --c: (#[0-9A-Fa-f]{6}); \}", html)
    assert len(colours) == 20
    assert len(set(colours)) == 20


@pytest.mark.unit
def test_unnamed_segment_is_called_by_its_number() -> None:
    report = make_report()
    report.segments[1].name = None
    report.segments[1].brief = None
    page = ParsedPage(render_segment_report(report))
    assert "Segment 2" in page.text
    assert len(page.find("p", class_="brief")) == 2


@pytest.mark.unit
def test_numeric_profile_compares_with_the_average() -> None:
    report = make_report()  # orders: 3, 5 and 7 against an average of 5
    report.segments[2].numeric_profile = [("orders", 7.0, 5.0), ("revenue", 2300.0, 1000.0)]
    text = " ".join(ParsedPage(render_segment_report(report)).text)
    assert "−40% vs average" in text
    assert "about average" in text
    assert "+40% vs average" in text
    assert "2.3× the average" in text
    assert "2,300" in text


@pytest.mark.unit
def test_quality_section_reads_each_figure() -> None:
    report = make_report()
    report.quality.labels_field = "topic"
    report.quality.nmi = 0.75
    report.quality.ari = 0.05
    page = ParsedPage(render_segment_report(report))
    text = " ".join(page.text)
    assert "Segments are distinct, with some overlap at their edges." in text  # silhouette 0.3
    assert "3 segments separated customers best among the numbers of segments tried (2 to 5)." in text
    assert "closely follow it" in text  # NMI 0.75
    assert "close to what a random grouping would give" in text  # ARI 0.05
    assert "How it was chosen: best silhouette over k = 2 to 5." in text
    bars = page.find("rect")
    assert len(bars) == 4
    assert [b["class"] for b in bars].count("chosen") == 1


@pytest.mark.unit
def test_optional_figures_are_left_out_when_absent() -> None:
    report = make_report()
    report.quality.silhouette_by_k = {}
    report.quality.silhouette = None
    page = ParsedPage(render_segment_report(report))
    assert not page.find("div", id="q-nmi") and not page.find("div", id="q-ari")
    assert not page.find("svg", class_="kchart")
    assert "Not computed for this run." in page.text


@pytest.mark.unit
def test_outliers_are_grey_and_listed() -> None:
    report = make_report()
    report.points.append(MapPoint(x=0.5, y=0.5, segment=-1, label="??"))
    report.outliers = 1
    report.total_records += 1
    page = ParsedPage(render_segment_report(report))
    assert len(page.find("circle", class_="co")) == 1
    assert page.find("li", **{"data-segment": "-1"})
    assert any("fit no segment well. They are drawn in grey on the map." in t for t in page.text)


@pytest.mark.unit
def test_empty_map_and_created_at_formats() -> None:
    page = ParsedPage(render_segment_report(make_report(points=[])))
    assert "No points to draw." in page.text
    assert not page.find("circle")
    assert "2026-11-23 09:30 UTC" in " ".join(page.text)
    assert "yesterday" in render_segment_report(make_report(created_at="yesterday"))


def _too_many_points(r: SegmentReport) -> None:
    r.points = [MapPoint(x=0, y=0, segment=1)] * (MAX_POINTS + 1)


BAD: list[tuple[Callable[[SegmentReport], None], str]] = [
    (lambda r: setattr(r.points[0], "segment", 9), r"points\[0\] belongs to segment 9, which is not in segments"),
    (lambda r: setattr(r.points[1], "x", math.nan), r"points\[1\] has a coordinate that is not a finite number"),
    (lambda r: setattr(r.segments[0], "share", 12.5), r"segment 1: share must be between 0 and 1"),
    (lambda r: setattr(r.segments[1], "id", 1), r"segment ids must be unique"),
    (lambda r: setattr(r.segments[0], "id", -1), r"segment id -1 is reserved"),
    (_too_many_points, r"5001 map points: sample at most 5000"),
]


@pytest.mark.unit
@pytest.mark.parametrize(("change", "message"), BAD)
def test_inconsistent_input_is_refused(change: Callable[[SegmentReport], None], message: str) -> None:
    report = make_report()
    change(report)
    with pytest.raises(ValueError, match=message):
        render_segment_report(report)


@pytest.mark.unit
def test_full_map_stays_light(sample_report: SegmentReport) -> None:
    report = dataclasses.replace(sample_report, points=(sample_report.points * 5)[:MAX_POINTS])
    html = render_segment_report(report)
    assert html.count('<circle class="pt') == MAX_POINTS
    assert len(html.encode()) < 2_000_000


# ------------------------------------------------------------------ real browser


@pytest.mark.integration
def test_report_in_chromium(sample_report: SegmentReport, recorded_page: Any, tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    path.write_text(render_segment_report(sample_report), encoding="utf-8")
    recorded_page.open(path)
    page = recorded_page.page

    svg = page.locator("#map svg#map-svg")
    assert svg.is_visible()
    box = svg.bounding_box()
    assert box and box["width"] > 500 and box["height"] > 200
    assert box["y"] < 820, "the map is the first thing on the page"
    assert page.get_by_role("img", name=re.compile(r"^Map of 1,200 customers")).is_visible()
    assert page.locator("#map circle.pt").count() == len(sample_report.points)
    for seg in sample_report.segments:
        card = page.locator(f'article.segment[data-segment="{seg.id}"]')
        assert card.count() == 1
        card.scroll_into_view_if_needed()
        assert card.is_visible()
        assert card.get_by_role("heading", name=seg.name or f"Segment {seg.id}").is_visible()

    # hovering a segment in the legend fades the others out (CSS only, no script)
    first = sample_report.segments[0]
    page.locator(f'.legend li[data-segment="{first.id}"] a').hover()
    # expect() retries: the fade is a short CSS transition
    expect(page.locator("#map circle.pt.c1").first).to_have_css("opacity", "0.08")  # the second segment
    expect(page.locator("#map circle.pt.c0").first).to_have_css("opacity", "1")  # the hovered one
    page.mouse.move(0, 0)
    expect(page.locator("#map circle.pt.c1").first).to_have_css("opacity", "1")

    page.emulate_media(media="print")
    assert svg.is_visible()
    assert recorded_page.requests_other_than(path.as_uri()) == []

    if os.environ.get("MATCHA_SCREENSHOTS") == "1":
        _save_screenshot(recorded_page.page, tmp_path)


@pytest.mark.integration
def test_hostile_texts_stay_inert_in_chromium(recorded_page: Any, tmp_path: Path) -> None:
    report = make_report()
    report.segments[0].examples = [ATTACK]
    report.segments[1].name = ATTACK
    report.points[0].label = "</title>" + ATTACK
    path = tmp_path / "hostile.html"
    path.write_text(render_segment_report(report), encoding="utf-8")
    recorded_page.open(path)
    page = recorded_page.page
    assert page.evaluate("window.pwned") is None
    assert page.locator('article.segment[data-segment="1"] .examples li').inner_text() == ATTACK
    assert page.locator("img").count() == 0
    assert recorded_page.requests_other_than(path.as_uri()) == []


def _save_screenshot(page: Page, tmp_path: Path) -> None:
    """The top of the page (title, map, legend, sizes) for docs/segmentation-report.md."""
    page.emulate_media(media="screen")
    page.mouse.move(0, 0)
    page.evaluate("window.scrollTo(0, 0)")
    shot = tmp_path / "shot.png"
    sizes = page.locator("#sizes").bounding_box()
    assert sizes
    height = min(sizes["y"] + sizes["height"] + 16, 1200)
    page.screenshot(path=str(shot), clip={"x": 0, "y": 0, "width": 1200, "height": height}, full_page=True)
    try:  # a 256-colour palette keeps the file small; Pillow is not a dependency, so only if present
        from PIL import Image

        with Image.open(shot) as img:
            img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(shot, optimize=True)
    except ImportError:
        pass
    assert shot.stat().st_size < 300_000, f"screenshot is {shot.stat().st_size} bytes"
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, SCREENSHOT)
