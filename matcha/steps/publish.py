"""``publish``: deliver approved items through a publisher connection, exactly once.

Only items approved by an upstream approval step (any step class that ``approves``) are sent, and
only if the decision's MAC verifies (see :mod:`matcha.runtime.integrity`) and the text about to be
sent still has the sha256 recorded with the approval. What is sent is the reviewed content: the
approved text and the context fields as the reviewer saw them, never the record's other fields
(a step between approval and publish cannot slip data past the reviewer). A ledger keyed by (run, step, record, hash)
makes a resumed publish skip what was already sent; items caught between sending and the ledger
update are checked against the destination (``already_published``) and HTTP publishers send an
idempotency key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import Field

from matcha.connectors.base import Publisher, PublishItem
from matcha.runtime import integrity
from matcha.runtime.batches import drive
from matcha.runtime.faults import crash_point
from matcha.runtime.store import sha256_text
from matcha.steps.base import BatchOutcome, Record, Step, StepConfig, StepContext, register_step


class PublishConfig(StepConfig):
    connector: str = Field(description="Name of a publisher connection (file stem in connectors/).")


@register_step("publish")
class PublishStep(Step):
    Config = PublishConfig
    references: ClassVar[dict[str, str]] = {"connector": "connectors"}
    connector_role = "publisher"
    publishes = True

    def execute(self, ctx: StepContext, when: Callable[[Record], bool] | None, on_error: str) -> None:
        publisher = ctx.connectors(self.config.connector)
        assert isinstance(publisher, Publisher)
        try:
            drive(self, ctx, lambda batch: self._batch(ctx, publisher, batch), when)
        finally:
            publisher.close()

    def _batch(self, ctx: StepContext, publisher: Any, batch: list[Record]) -> BatchOutcome:
        key = integrity.installation_key()
        decisions = ctx.store.decisions_for(ctx.run_id, sorted(ctx.approvals), [r["id"] for r in batch])
        outcome = BatchOutcome()
        items: list[PublishItem] = []
        for rec in batch:
            rid = rec["id"]
            verdict, decision = self._verify(rec, decisions.get(rid, []), key)
            if decision is None:
                outcome.quarantined.append((rec, verdict))
                continue
            text = decision["final_text"]
            # What leaves is what the reviewer saw: the approved text and the context fields as shown
            # (both covered by the decision's MAC), never fields a later step changed or added.
            reviewed = {**decision["context"], decision["field"]: text, "id": rid}
            items.append(PublishItem(ctx.run_id, ctx.step_id, rid, text, decision["sha256"], reviewed))
        keys = [(it.record_id, it.sha256) for it in items]
        ledger = ctx.store.ledger_status(ctx.run_id, ctx.step_id, keys)
        in_doubt = [it for it in items if ledger.get((it.record_id, it.sha256)) == "sending"]
        delivered = publisher.already_published(in_doubt) if in_doubt else set()
        to_send = [it for it in items if ledger.get((it.record_id, it.sha256)) != "sent" and it.key not in delivered]
        if to_send:
            ctx.store.ledger_mark(ctx.run_id, ctx.step_id, [(i.record_id, i.sha256) for i in to_send], "sending")
            publisher.publish(to_send)
            crash_point("publish.after_send")
        ctx.store.ledger_mark(ctx.run_id, ctx.step_id, keys, "sent")
        crash_point("publish.after_ledger")
        for it in items:
            it.record["published"] = {"connector": self.config.connector, "sha256": it.sha256, "key": it.key}
            outcome.out.append(it.record)
        return outcome

    @staticmethod
    def _verify(rec: Record, decisions: list[dict[str, Any]], key: bytes) -> tuple[str, dict[str, Any] | None]:
        """('', decision) when the record may be published, else (reason, None)."""
        if not decisions:
            return "no approval decision for this record", None
        if any(d["status"] == "rejected" for d in decisions):
            return "rejected by a reviewer", None
        for d in decisions:
            if d["status"] != "approved":
                continue
            if not integrity.verify(d, key):
                return ("the approval decision fails its integrity check (it was changed outside Matcha, or signed "
                        "with another installation key); not published. See docs/approval.md"), None
            text = rec.get(d["field"])
            if isinstance(text, str) and sha256_text(text) == d["sha256"] == sha256_text(d["final_text"]):
                return "", d
        return "content changed after approval (sha256 does not match the approved text); not published", None
