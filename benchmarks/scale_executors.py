"""Throughput of the embed and generate steps on the local executor and on Ray with 1 and 2 actors.

    .venv/bin/python benchmarks/scale_executors.py [--embed-n 3000] [--generate-n 24] [--max-tokens 24]

Same texts each time (real product reviews from ../shared/data/segmentation, read in place), each run
in a fresh state folder (nothing cached), through the public API (``Pipeline.run``): the step's wall
time as the run records it, which for Ray includes starting the actors and loading the model in
each. Ray runs on a local cluster on this machine (2 CPUs; ``ray.init`` on loopback, no dashboard,
no usage statistics). Models: the offline defaults (USE multilingual v3 on ONNX Runtime; Gemma 3
270M on llama.cpp). Also prints the fixed cost of a Ray step (actors started, model loaded) from a
run of 2 records, and the throughput net of it.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from pathlib import Path

from matcha import Pipeline

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "segmentation" / "womens_clothing_reviews" / "dev.csv"

EMBED = """
name: bench-embed
settings: {{batch_size: 128, executor: {executor}, ray: {{actors: {actors}}}}}
steps:
  - {{id: step, type: embed}}
"""

GENERATE = """
name: bench-generate
settings: {{batch_size: 2, executor: {executor}, ray: {{actors: {actors}}}}}
steps:
  - id: step
    type: generate
    with: {{prompt: "Summarise this review in one short sentence: {{{{ text }}}}", max_tokens: {max_tokens},
           temperature: 0}}
"""


def texts(n: int) -> list[dict[str, str]]:
    csv.field_size_limit(sys.maxsize)
    with open(DATA, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["text"].strip()]
    return [{"id": f"r{i}", "text": rows[i % len(rows)]["text"] + ("" if i < len(rows) else f" ({i})")}
            for i in range(n)]


def timed(spec: str, records: list[dict[str, str]]) -> float:
    run = Pipeline.from_yaml(spec, home=tempfile.mkdtemp(prefix="matcha-scale-")).run(records=records)
    assert run.status == "succeeded", run.error
    step = {s.step_id: s for s in run.steps()}["step"]
    assert step.out == len(records), (step.out, len(records))
    return float(step.seconds or 0.0)


def measure(name: str, template: str, records: list[dict[str, str]], **fmt: object) -> None:
    rows = []
    for executor, actors in (("local", 1), ("ray", 1), ("ray", 2)):
        spec = template.format(executor=executor, actors=actors, **fmt)
        fixed = timed(spec, records[:2]) if executor == "ray" else 0.0
        seconds = timed(spec, records)
        rows.append((executor if executor == "local" else f"ray x{actors}", seconds, fixed))
    base = len(records) / rows[0][1]
    print(f"\n{name}: {len(records)} records")
    print(f"  {'executor':10} {'seconds':>8} {'rec/s':>8} {'vs local':>9} {'fixed s':>8} {'net rec/s':>10}")
    for label, seconds, fixed in rows:
        rate = len(records) / seconds
        net = f"{len(records) / (seconds - fixed):10.2f}" if seconds > fixed > 0 else f"{'':>10}" if fixed else \
            f"{rate:10.2f}"
        print(f"  {label:10} {seconds:8.2f} {rate:8.2f} {rate / base:9.2f} {fixed:8.2f} {net}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--embed-n", type=int, default=3000)
    ap.add_argument("--generate-n", type=int, default=24)
    ap.add_argument("--max-tokens", type=int, default=24)
    args = ap.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from matcha.runtime.remote import connect

    connect(None)  # start the local cluster once, outside the timings
    print(f"machine: {os.cpu_count()} CPUs; Ray local cluster on loopback")
    records = texts(max(args.embed_n, args.generate_n))
    measure("embed (USE multilingual v3, ONNX)", EMBED, records[:args.embed_n])
    measure("generate (Gemma 3 270M, llama.cpp)", GENERATE, records[:args.generate_n], max_tokens=args.max_tokens)


if __name__ == "__main__":
    main()
