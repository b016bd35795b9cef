"""Approval at scale: N items waiting for review, then approve --all and publish, with bounded memory;
and the cost of deciding one item at 10 and at N pending items.

A pipeline ``source → approval → publish`` (a jsonl file) runs to the approval pause on N records.
Then, each in a fresh process so peak RSS is its own:

* ``list``: the first review page (``Run.pending(limit=50)``) and the pending count;
* ``one``: approve one item in the middle of the queue (the run stays paused);
* ``all``: ``Run.approve(all=True)``: every pending item approved a page at a time, then the run
  resumes and publishes everything; the published file is counted.

The same ``one`` is measured on a 10-item run, to compare the cost of one decision.

    .venv/bin/python benchmarks/approval_scale.py              # 1,000,000 items
    .venv/bin/python benchmarks/approval_scale.py --n 100000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PIPELINE = """
name: approval-scale
source: {connector: drafts}
settings: {batch_size: 2000}
steps:
  - {id: review, type: approval, with: {field: draft}}
  - {id: publish, type: publish, with: {connector: out}}
"""


def project(root: Path, n: int) -> Path:
    (root / "connectors").mkdir(parents=True)
    (root / "pipelines").mkdir()
    with open(root / "drafts.jsonl", "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"D{i:07d}", "draft": f"Hello customer {i}, here is your personal offer."})
                     + "\n")
    (root / "connectors" / "drafts.yaml").write_text("kind: jsonl\npath: drafts.jsonl\n")
    (root / "connectors" / "out.yaml").write_text("kind: file\npath: out/published.jsonl\nformat: jsonl\n")
    (root / "pipelines" / "approve.yaml").write_text(PIPELINE)
    return root


def child(action: str, root: Path, item: str | None) -> dict[str, object]:
    from matcha import Pipeline, Run

    os.chdir(root)
    state = root / "run_id"
    t = time.perf_counter()
    out: dict[str, object] = {}
    if action == "run":
        run = Pipeline.load(root / "pipelines" / "approve.yaml").run()
        run.raise_for_status()
        state.write_text(run.id)
        out["status"] = run.status
    else:
        run = Run.open(state.read_text())
        if action == "list":
            out["page"] = len(run.pending(limit=50))
            out["pending"] = run.pending_count()
        elif action == "one":
            run.approve(item, resume=False, reviewer="bench")
            out["seconds"] = time.perf_counter() - t  # the decision only, not the count below
            out["pending"] = run.pending_count()
        elif action == "all":
            run = run.approve(all=True, reviewer="bench")
            run.raise_for_status()
            out["status"] = run.status
            with open(root / "out" / "published.jsonl", encoding="utf-8") as fh:
                out["published"] = sum(1 for _ in fh)
    out.setdefault("seconds", time.perf_counter() - t)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def call(action: str, root: Path, item: str | None = None) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--child", action, "--root", str(root)] + (["--item", item] if item else [])
    env = {**os.environ, "MATCHA_LOG_LEVEL": "warning"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        sys.exit(f"{action} failed:\n{done.stderr[-3000:]}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--child", choices=["run", "list", "one", "all"])
    ap.add_argument("--root", type=Path)
    ap.add_argument("--item")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.root, args.item)))
        return
    with tempfile.TemporaryDirectory(prefix="matcha-approve-") as tmp:
        small = project(Path(tmp) / "small", 10)
        big = project(Path(tmp) / "big", args.n)
        for root, n in ((small, 10), (big, args.n)):
            r = call("run", root)
            print(f"{n:>9,} items: run to the approval pause {r['seconds']:7.1f} s, "
                  f"peak RSS {r['peak_rss_mb']:5.0f} MB")
            lst = call("list", root)
            print(f"{n:>9,} items: first review page + count  {lst['seconds']:7.2f} s, peak RSS "
                  f"{lst['peak_rss_mb']:5.0f} MB ({lst['pending']:,} pending)")
            ones = [call("one", root, f"D{i:07d}") for i in (n // 2, n // 3, n - 1)]
            seconds = sorted(float(str(o["seconds"])) for o in ones)
            print(f"{n:>9,} items: approve one (3 items, fresh process each) "
                  f"{', '.join(f'{s * 1000:.0f}' for s in seconds)} ms, peak RSS "
                  f"{max(float(str(o['peak_rss_mb'])) for o in ones):5.0f} MB")
            a = call("all", root)
            assert a["published"] == n, a
            print(f"{n:>9,} items: approve --all + publish        {a['seconds']:7.1f} s, peak RSS "
                  f"{a['peak_rss_mb']:5.0f} MB (target < 1,000), {a['published']:,} published")


if __name__ == "__main__":
    main()
