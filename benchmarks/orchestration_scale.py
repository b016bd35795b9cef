"""Pure orchestration at scale: N records through 4 cheap steps, Matcha against a plain Python loop.

Two plain loops read the same CSV with the same source connector and call the same step code on
batches in memory: one keeps nothing (the floor: the step code alone), the other writes its result
to a JSON-lines file, as a script doing this job would (the issue's "plain Python loop doing the
same work", 8-14 s when it was written). Matcha adds what a run is for: every step's outcome
durable in the run store (resumable, counted, quarantine), LangGraph checkpoints. Prints wall time,
peak RSS, the store's size against the CSV's, and the ratios. Each side runs in a fresh subprocess.

    python benchmarks/orchestration_scale.py            # 1,000,000 records
    python benchmarks/orchestration_scale.py --n 100000
    python benchmarks/orchestration_scale.py --n 100000 --postgres   # also on PostgreSQL

With ``--postgres`` Matcha runs a second time with its run store and checkpoints in a throw-away
PostgreSQL server on loopback (Debian's packages, as the tests start it; fsync off like the tests,
so the figure is the store's work, not the disk's), and the ratio PostgreSQL / SQLite is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PIPELINE = """
name: orchestration-scale
source: {connector: customers}
settings: {batch_size: 2000}
steps:
  - {id: parse, type: script, with: {function: "benchmarks/_scale_steps.py:parse"}}
  - {id: active, type: filter, with: {condition: "orders > 0"}}
  - {id: tier, type: script, with: {function: "benchmarks/_scale_steps.py:tier"}}
  - {id: tidy, type: script, with: {function: "benchmarks/_scale_steps.py:tidy"}}
"""
WORDS = ["great", "service", "late", "delivery", "price", "quality", "refund", "size", "colour", "friendly",
         "slow", "fast"]


def make_csv(path: Path, n: int) -> None:
    rng = random.Random(0)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("id,name,email,city,orders,revenue,text\n")
        for i in range(n):
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 9)))
            fh.write(f"C{i:07d},Customer {i},c{i}@example.com,City {i % 97},{rng.randint(0, 30)},"
                     f"{rng.uniform(0, 900):.2f}, {text} \n")


def project(root: Path, n: int) -> Path:
    (root / "connectors").mkdir(parents=True)
    (root / "pipelines").mkdir()
    (root / "benchmarks").mkdir()
    (root / "benchmarks" / "_scale_steps.py").write_text((HERE / "_scale_steps.py").read_text())
    make_csv(root / "customers.csv", n)
    (root / "connectors" / "customers.yaml").write_text("kind: csv\npath: customers.csv\n")
    (root / "pipelines" / "scale.yaml").write_text(PIPELINE)
    return root


def run_matcha(root: Path) -> dict[str, float]:
    from matcha import Pipeline

    os.chdir(root)
    t = time.perf_counter()
    run = Pipeline.load(root / "pipelines" / "scale.yaml").run()
    run.raise_for_status()
    seconds = time.perf_counter() - t
    out = {s.step_id: s.out for s in run.steps()}
    url = os.environ.get("MATCHA_DATABASE_URL")
    if url:
        import psycopg

        with psycopg.connect(url) as conn:
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return {"seconds": seconds, "out": out["tidy"], "store_mb": (size[0] if size else 0) / 1e6}
    return {"seconds": seconds, "out": out["tidy"], "store_mb": (root / ".matcha" / "runs.db").stat().st_size / 1e6}


def run_plain(root: Path, keep: bool = False) -> dict[str, float]:
    sys.path.insert(0, str(root / "benchmarks"))
    import _scale_steps as steps  # type: ignore[import-not-found]

    from matcha.connectors.files import CsvSource

    t = time.perf_counter()
    source = CsvSource("customers", CsvSource.Config(kind="csv", path="customers.csv"), base_dir=root)
    kept = 0
    batch: list[dict[str, object]] = []
    out = open(root / "plain.jsonl", "w", encoding="utf-8") if keep else None  # noqa: SIM115

    def flush(batch: list[dict[str, object]]) -> int:
        b = steps.parse(batch)
        b = [r for r in b if r["orders"] > 0]  # type: ignore[operator]
        b = steps.tidy(steps.tier(b))
        if out is not None:
            out.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in b)
        return len(b)

    for row in source.read():
        assert row.data is not None
        batch.append(dict(row.data))
        if len(batch) == 2000:
            kept += flush(batch)
            batch = []
    kept += flush(batch)
    if out is not None:
        out.close()
    return {"seconds": time.perf_counter() - t, "out": kept}


def child(kind: str, root: Path) -> None:
    result = run_matcha(root) if kind == "matcha" else run_plain(root, keep=kind == "plain-kept")
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--child", choices=["matcha", "plain", "plain-kept"])
    ap.add_argument("--root", type=Path)
    ap.add_argument("--postgres", action="store_true", help="also run Matcha with its store in PostgreSQL")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.root)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = project(Path(tmp), args.n)
        csv_mb = (root / "customers.csv").stat().st_size / 1e6
        res = {}
        for kind in ("plain", "plain-kept", "matcha"):
            env = {**os.environ, "MATCHA_LOG_LEVEL": "warning"}
            out = subprocess.run([sys.executable, __file__, "--child", kind, "--root", str(root)],
                                 capture_output=True, text=True, check=True, env=env)
            res[kind] = json.loads(out.stdout.strip().splitlines()[-1])
        p, k, m = res["plain"], res["plain-kept"], res["matcha"]
        assert p["out"] == k["out"] == m["out"], (p, k, m)
        print(f"records: {args.n:,} (CSV {csv_mb:.0f} MB), 4 steps, {m['out']:,} out")
        print(f"plain loop, keeps nothing     : {p['seconds']:7.1f} s  peak RSS {p['peak_rss_mb']:6.0f} MB")
        print(f"plain loop, writes its result : {k['seconds']:7.1f} s  peak RSS {k['peak_rss_mb']:6.0f} MB")
        print(f"matcha run                    : {m['seconds']:7.1f} s  peak RSS {m['peak_rss_mb']:6.0f} MB  "
              f"store {m['store_mb']:.0f} MB ({m['store_mb'] / csv_mb:.2f}x the CSV)")
        print(f"ratio matcha / loop writing its result: {m['seconds'] / k['seconds']:.2f}x (target <= 3x); "
              f"matcha / loop keeping nothing: {m['seconds'] / p['seconds']:.2f}x; "
              f"store/CSV {m['store_mb'] / csv_mb:.2f}x (target <= 3x)")
        if args.postgres:
            pg = on_postgres(root)
            assert pg["out"] == m["out"], (pg, m)
            print(f"matcha run, PostgreSQL store  : {pg['seconds']:7.1f} s  peak RSS {pg['peak_rss_mb']:6.0f} MB  "
                  f"database {pg['store_mb']:.0f} MB")
            print(f"ratio PostgreSQL / SQLite store: {pg['seconds'] / m['seconds']:.2f}x "
                  f"({m['out'] / pg['seconds']:,.0f} records/s through 4 steps)")


def on_postgres(root: Path) -> dict[str, float]:
    sys.path.insert(0, str(HERE.parent / "tests"))
    import shutil

    import postgres  # type: ignore[import-not-found]  # the tests' throw-away server

    shutil.rmtree(root / ".matcha", ignore_errors=True)
    with postgres.server() as server:
        env = {**os.environ, "MATCHA_LOG_LEVEL": "warning", "MATCHA_DATABASE_URL": postgres.new_database(server)}
        out = subprocess.run([sys.executable, __file__, "--child", "matcha", "--root", str(root)],
                             capture_output=True, text=True, check=True, env=env)
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()
