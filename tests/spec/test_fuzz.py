"""Thousands of mutated pipeline files: each one is valid or gets located PipelineErrors, in bounded time
and memory — never another exception, an unlocated message or a hang. ``benchmarks/fuzz_pipelines.py``
runs the same fuzzer over 100,000 files."""

from __future__ import annotations

import resource

import pytest
from pipeline_fuzz import run

pytestmark = pytest.mark.unit

CASES = 3000
TIME_LIMIT = 2.0  # seconds per file
MEMORY_LIMIT_MB = 300  # growth of the process's peak RSS over the whole fuzz run


def test_mutated_pipeline_files_get_located_errors_in_bounded_time_and_memory() -> None:
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    report = run(CASES, seed=20261123, time_limit=TIME_LIMIT)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024 - peak_before
    shown = "\n\n".join(f"case {i}: {what}\n{text[:400]!r}" for i, what, text in report.findings[:5])
    assert report.bad == 0, f"{report.bad} of {report.cases} files: {dict(report.outcomes)}\n{shown}"
    assert report.outcomes["valid"] > 50 and report.outcomes["located error"] > 1000  # the mix stays meaningful
    assert report.slowest < TIME_LIMIT
    assert grown < MEMORY_LIMIT_MB, f"peak memory grew by {grown} MB"
