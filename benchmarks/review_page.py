"""The review page at scale: how long the queue's first page takes with 100,000 items pending, against
10 items pending, over real HTTP (``matcha serve``'s app under uvicorn on loopback) and in a real
browser (Debian's Chromium through Playwright: navigation to the page's ``load`` event).

A pipeline ``source → approval → publish`` runs to the approval pause on N records (each with a
draft and two context fields), and another on 10. Then, for each run, the first page
(``/runs/RUN``), the second page (keyset cursor), a filtered page and the audit page are fetched
``--repeat`` times with a logged-in session; the median is printed, and the ratio N / 10.

    .venv/bin/python benchmarks/review_page.py              # 100,000 items
    .venv/bin/python benchmarks/review_page.py --n 20000 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path

PIPELINE = """
name: review-scale
source: {{connector: {name}}}
settings: {{batch_size: 2000}}
steps:
  - {{id: review, type: approval, with: {{field: draft, context: [customer, segment]}}}}
  - {{id: publish, type: publish, with: {{connector: out}}}}
"""


def make_run(root: Path, name: str, n: int) -> str:
    from matcha import Pipeline

    with open(root / f"{name}.jsonl", "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"D{i:07d}", "customer": f"Customer {i}", "segment": f"segment-{i % 7}",
                                 "draft": f"Hello customer {i}, here is your personal offer for this month."}) + "\n")
    (root / "connectors" / f"{name}.yaml").write_text(f"kind: jsonl\npath: {name}.jsonl\n")
    (root / "pipelines" / f"{name}.yaml").write_text(PIPELINE.format(name=name))
    t = time.perf_counter()
    run = Pipeline.load(root / "pipelines" / f"{name}.yaml", home=root / ".matcha").run()
    print(f"{name}: {n:,} items pending after {time.perf_counter() - t:.1f} s", flush=True)
    return run.id


def serve(root: Path) -> tuple[str, object]:
    import uvicorn

    from matcha.serve import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(root / ".matcha", resume=False), host="127.0.0.1", port=0,
                                           log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}", server


def median_ms(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=9)
    args = ap.parse_args()
    import httpx

    from matcha.serve.users import Users

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "connectors").mkdir()
        (root / "pipelines").mkdir()
        (root / "connectors" / "out.yaml").write_text("kind: file\npath: out/published.jsonl\n")
        runs = {"10": make_run(root, "small", 10), f"{args.n:,}": make_run(root, "large", args.n)}
        Users(root / ".matcha").add("bench", "benchmark password", "reviewer")
        base, server = serve(root)
        c = httpx.Client(base_url=base)
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)  # type: ignore[union-attr]
        c.post("/login", data={"csrf": token, "username": "bench", "password": "benchmark password"})
        rows: dict[str, dict[str, float]] = {}
        for label, run_id in runs.items():
            first = c.get(f"/runs/{run_id}")
            assert first.status_code == 200 and first.text.count('<article class="item"') == min(20, int(
                label.replace(",", ""))), first.text[:300]
            nxt = re.search(r'href="([^"]+)" rel="next"', first.text)
            rows[label] = {
                "first page": median_ms(lambda rid=run_id: c.get(f"/runs/{rid}"), args.repeat),
                "next page": median_ms(lambda n=nxt: c.get(n.group(1).replace("&amp;", "&")), args.repeat)
                if nxt else float("nan"),
                "filtered page": median_ms(lambda rid=run_id: c.get(f"/runs/{rid}", params={"q": "segment-3"}),
                                           args.repeat),
                "audit page": median_ms(lambda rid=run_id: c.get(f"/runs/{rid}/audit"), args.repeat),
                "runs list": median_ms(lambda: c.get("/"), args.repeat),
            }
        browser = browser_ms(base, runs, args.repeat)
        for label, ms in browser.items():
            rows[label]["browser: first page loaded"] = ms
        server.should_exit = True  # type: ignore[attr-defined]
    labels = list(rows)
    print(f"\nreview page, median of {args.repeat} (ms), items pending: " + " vs ".join(labels))
    print(f"{'':30s}" + "".join(f"{lb:>12s}" for lb in labels) + f"{'ratio':>8s}")
    for what in rows[labels[0]]:
        a, b = rows[labels[0]][what], rows[labels[1]][what]
        print(f"{what:30s}{a:12.1f}{b:12.1f}{b / a:8.2f}")


def browser_ms(base: str, runs: dict[str, str], repeat: int) -> dict[str, float]:
    """Median time from navigation to the ``load`` event of the first page, in Chromium."""
    from playwright.sync_api import sync_playwright

    out: dict[str, float] = {}
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium",
                              args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = b.new_page()
        page.goto(f"{base}/login")
        page.get_by_label("Username").fill("bench")
        page.get_by_label("Password").fill("benchmark password")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{base}/")
        for label, run_id in runs.items():
            out[label] = median_ms(lambda rid=run_id: page.goto(f"{base}/runs/{rid}", wait_until="load"), repeat)
        b.close()
    return out


if __name__ == "__main__":
    main()
