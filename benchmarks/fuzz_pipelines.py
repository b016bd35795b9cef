"""Fuzz 100,000 mutated pipeline files through ``Pipeline.from_yaml(...).validate()`` and print the outcomes.

    .venv/bin/python benchmarks/fuzz_pipelines.py [--cases 100000] [--seed 1] [--time-limit 2]

Acceptable outcomes are "valid" and "located error" (a PipelineError whose every issue names a file
and a line); anything else is a finding, printed with the file that caused it. The same fuzzer runs
3,000 files in the test suite (tests/spec/test_fuzz.py). Exit status 1 if there is any finding.
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from pipeline_fuzz import run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--time-limit", type=float, default=2.0, help="seconds allowed per file")
    args = parser.parse_args()
    report = run(args.cases, args.seed, args.time_limit, progress=10_000)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n{report.cases:,} files in {report.seconds:.0f} s ({report.cases / report.seconds:.0f} files/s), "
          f"slowest {report.slowest * 1000:.0f} ms, peak RSS {peak:.0f} MB")
    for outcome, n in sorted(report.outcomes.items(), key=lambda kv: -kv[1]):
        print(f"  {outcome:<16} {n:>8,}  {100 * n / report.cases:5.1f}%")
    unlocated = report.outcomes["unlocated error"] + report.outcomes["internal error"]
    print(f"non-Matcha exceptions: {report.outcomes['exception']}; over the time bound: "
          f"{report.outcomes['over time']}; unlocated or internal errors: {unlocated}")
    for i, what, text in report.findings[:20]:
        print(f"\n--- case {i}: {what}\n{text[:600]!r}")
    return 1 if report.bad else 0


if __name__ == "__main__":
    sys.exit(main())
