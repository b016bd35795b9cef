"""``approval``: humans review each item before anything can be published.

The step records every input record as a pending item, then pauses the run with LangGraph's
``interrupt()``. Decisions are made from any later process (``matcha approve`` / ``reject`` or the
library) and stored with reviewer, time, AI text, final text and its sha256. When no item is
pending any more the run resumes and this node runs again from its start: recording pending items
is idempotent (existing items are kept, records already written are skipped), so re-running it is
safe, and nothing else with side effects happens before ``interrupt()``.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import Field

from matcha.runtime.batches import drive
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

        # pass 1: every record becomes a pending item (no row yet) or is set aside (a row now)
        drive(self, ctx, lambda batch: self._record_pending(batch, ctx), when)
        store = ctx.store
        while store.has_pending(ctx.run_id, ctx.step_id):
            pending = store.count_approvals(ctx.run_id, ctx.step_id, status="pending")
            store.set_step_status(ctx.run_id, ctx.step_id, "waiting")
            interrupt({"run_id": ctx.run_id, "step": ctx.step_id, "pending": pending})
        # pass 2: the decided items (the only records without a row) leave approved or rejected
        drive(self, ctx, lambda batch: self._decided(batch, ctx), None)

    def _record_pending(self, batch: list[Record], ctx: StepContext) -> BatchOutcome:
        field = self.config.field
        items = []
        skipped = BatchOutcome()
        for rec in batch:
            if not isinstance(rec.get(field), str):
                skipped.quarantined.append((rec, f"no text to review in field '{field}'"))
            elif "\x00" in rec[field]:  # no reviewer can read it, and PostgreSQL cannot store it
                skipped.quarantined.append((rec, f"the text to review in field '{field}' holds a NUL character "
                                                 "(\\x00); remove it upstream"))
            else:
                context = {k: rec.get(k) for k in self.config.context}
                items.append((rec["id"], 0, field, rec[field], context))
        seqs = ctx.store.seqs_of(ctx.run_id, [i[0] for i in items])
        ctx.store.add_pending(ctx.run_id, ctx.step_id, [(rid, seqs[rid], *rest) for rid, _, *rest in items])
        return skipped

    def _decided(self, batch: list[Record], ctx: StepContext) -> BatchOutcome:
        outcome = BatchOutcome()
        decisions = {rid: ds[0] for rid, ds in
                     ctx.store.decisions_for(ctx.run_id, [ctx.step_id], [r["id"] for r in batch]).items()}
        for rec in batch:
            d = decisions.get(rec["id"])
            if d is None:  # cannot happen: every record without a row was recorded as pending
                outcome.quarantined.append((rec, "no review item was recorded for this record"))
            elif d["status"] == "approved":
                rec[d["field"]] = d["final_text"]
                rec["approval"] = {k: d[k] for k in ("reviewer", "decided_at", "sha256")}
                rec["approval"]["edited"] = d["final_text"] != d["ai_text"]
                outcome.out.append(rec)
            else:
                outcome.dropped.append((rec, f"rejected by {d['reviewer']}: {d['reason'] or 'no reason given'}"))
        return outcome
