"""``approval``: humans review each item before anything can be published.

The step records every input record as a pending item, then pauses the run with LangGraph's
``interrupt()``. Decisions are made from any later process (``matcha approve`` / ``reject`` or the
library) and stored with reviewer, time, AI text, final text and its sha256. When no item is
pending any more the run resumes and this node runs again from its start: recording pending items
is idempotent (existing items are kept), so re-running it is safe, and nothing else with side
effects happens before ``interrupt()``.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import Field

from matcha.runtime.batches import write_outcome
from matcha.steps.base import BatchOutcome, Record, Step, StepConfig, StepContext, register_step


class ApprovalConfig(StepConfig):
    field: str = Field("draft", description="The record field holding the text to review (and to publish).")
    context: list[str] = Field(default_factory=list,
                               description="Other record fields shown to the reviewer next to the text.")


@register_step("approval")
class ApprovalStep(Step):
    Config = ApprovalConfig
    approves = True

    def reviewed_fields(self) -> list[str]:
        return [self.config.field, *self.config.context]

    def execute(self, ctx: StepContext, when: Callable[[Record], bool] | None, on_error: str) -> None:
        from langgraph.types import interrupt

        self._record_pending(ctx, when)
        store = ctx.store
        while pending := store.count_approvals(ctx.run_id, ctx.step_id, status="pending"):
            store.set_step_status(ctx.run_id, ctx.step_id, "waiting")
            interrupt({"run_id": ctx.run_id, "step": ctx.step_id, "pending": pending})
        for rows in store.iter_output(ctx.run_id, ctx.needs, ctx.batch_size):
            outcome = BatchOutcome()
            seqs = {}
            decisions = {rid: ds[0] for rid, ds in
                         store.decisions_for(ctx.run_id, [ctx.step_id], [rid for rid, _, _ in rows]).items()}
            for rid, seq, rec in rows:
                d = decisions.get(rid)
                if d is None:  # dropped by `when` or quarantined while recording
                    continue
                rec["id"] = rid
                seqs[rid] = seq
                if d["status"] == "approved":
                    rec[d["field"]] = d["final_text"]
                    rec["approval"] = {k: d[k] for k in ("reviewer", "decided_at", "sha256")}
                    rec["approval"]["edited"] = d["final_text"] != d["ai_text"]
                    outcome.out.append(rec)
                else:
                    outcome.dropped.append((rec, f"rejected by {d['reviewer']}: {d['reason'] or 'no reason given'}"))
            write_outcome(ctx, outcome, seqs)

    def _record_pending(self, ctx: StepContext, when: Callable[[Record], bool] | None) -> None:
        field = self.config.field
        for rows in ctx.store.iter_output(ctx.run_id, ctx.needs, ctx.batch_size):
            items = []
            skipped = BatchOutcome()
            seqs = {}
            for rid, seq, rec in rows:
                rec["id"] = rid
                seqs[rid] = seq
                if when is not None and not when(rec):
                    skipped.dropped.append((rec, "condition `when` not met"))
                elif not isinstance(rec.get(field), str):
                    skipped.quarantined.append((rec, f"no text to review in field '{field}'"))
                else:
                    context = {k: rec.get(k) for k in self.config.context}
                    items.append((rid, seq, field, rec[field], context))
            ctx.store.add_pending(ctx.run_id, ctx.step_id, items)
            write_outcome(ctx, skipped, seqs)
