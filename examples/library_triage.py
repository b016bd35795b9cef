"""Use Matcha from Python: run a pipeline, look at what waits for review, decide, and publish.

    python examples/library_triage.py

Runs `pipelines/triage.yaml` on the example messages, approves every draft except one (which is
rejected) and one (which is edited), then prints what was published. State goes to a temporary
folder so the example leaves nothing behind but `out/replies.jsonl`.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from matcha import Pipeline

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        pipeline = Pipeline.load(ROOT / "pipelines" / "triage.yaml", home=home)
        run = pipeline.run()
        print(f"run {run.id}: {run.status}")
        pending = run.pending()
        for item in pending:
            print(f"- {item.id}: {item.ai_text[:60]}...")
        first, second, *rest = pending
        run.reject(first.id, reason="this customer was already called back", reviewer="example")
        run.approve(second.id, edit=second.ai_text + " (Edited by a human.)", reviewer="example")
        run.approve([i.id for i in rest], reviewer="example")
        print(f"run {run.id}: {run.status}")
        for step in run.steps():
            print(f"  {step.step_id:<8} in {step.received:>3}  out {step.out:>3}  dropped {step.dropped:>3}"
                  f"  quarantined {step.quarantined:>3}")
        published = [json.loads(line) for line in (ROOT / "out" / "replies.jsonl").read_text().splitlines()]
        print(f"{len(published)} lines in out/replies.jsonl; this run published:")
        for rec in published:
            if rec["run_id"] == run.id:
                print(f"  {rec['id']}: {rec['text'][:70]}")


if __name__ == "__main__":
    main()
