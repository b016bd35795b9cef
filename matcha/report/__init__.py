"""Reports Matcha writes for people: self-contained HTML pages that make no network request.

    from matcha.report import SegmentReport, render_segment_report
    html = render_segment_report(SegmentReport(...))
"""

from matcha.report.segments import (
    MAX_POINTS,
    MapPoint,
    ReportQuality,
    ReportSegment,
    SegmentReport,
    render_segment_report,
)

__all__ = ["MAX_POINTS", "MapPoint", "ReportQuality", "ReportSegment", "SegmentReport", "render_segment_report"]
