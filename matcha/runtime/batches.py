"""The default way a step runs: stream batches from the store, process, write the outcome.

Re-entering a step after a crash skips the records it already finished (their rows exist), so
work is resumed at batch granularity. A batch whose ``process`` raises is retried record by record
to isolate the bad ones, which are quarantined (``on_error: quarantine``) or fail the run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from matcha.errors import MatchaError, StepError
from matcha.secrets import mask
from matcha.steps.base import BatchOutcome, Record, Step, StepContext

log = structlog.get_logger("matcha.step")


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if not isinstance(exc, MatchaError):
        text = f"{type(exc).__name__}: {text}"
    return mask(text)[:500]


def _isolate(step: Step, batch: list[Record], ctx: StepContext, on_error: str) -> BatchOutcome:
    merged = BatchOutcome()
    for rec in batch:
        try:
            one = step.process([rec], ctx)
        except Exception as exc:
            if on_error != "quarantine":
                raise StepError(f"step '{ctx.step_id}' failed on record '{rec.get('id')}': {_describe(exc)}. "
                                "Fix the record or the step, or set `on_error: quarantine` to set bad records "
                                "aside, then `matcha resume RUN`") from exc
            merged.quarantined.append((rec, _describe(exc)))
            continue
        merged.out += one.out
        merged.dropped += one.dropped
        merged.quarantined += one.quarantined
    return merged


def _check_ids(outcome: BatchOutcome, batch_ids: set[str], step_id: str) -> None:
    seen: set[str] = set()
    for rec in [*outcome.out, *(r for r, _ in outcome.dropped), *(r for r, _ in outcome.quarantined)]:
        rid = rec.get("id")
        if rid not in batch_ids:
            raise StepError(f"step '{step_id}' returned a record with id {rid!r} that was not in its input. "
                            "Steps must keep each record's 'id' and may not invent records")
        if rid in seen:
            raise StepError(f"step '{step_id}' returned record {rid!r} twice. Return each input record once")
        seen.add(rid)


def run_batches(step: Step, ctx: StepContext, when: Callable[[Record], bool] | None, on_error: str) -> None:
    store = ctx.store
    done = store.done_ids(ctx.run_id, ctx.step_id)
    total = store.count_input(ctx.run_id, ctx.needs)
    progressed = len(done)
    ctx.progress(ctx.step_id, progressed, total)
    warmed = False
    for rows in store.iter_output(ctx.run_id, ctx.needs, ctx.batch_size):
        todo = [(rid, seq, rec) for rid, seq, rec in rows if rid not in done]
        if not todo:
            continue
        seqs = {rid: seq for rid, seq, _ in todo}
        batch: list[Record] = []
        skipped: list[tuple[Record, str]] = []
        for rid, _, rec in todo:
            rec["id"] = rid
            if when is None or when(rec):
                batch.append(rec)
            else:
                skipped.append((rec, "condition `when` not met"))
        outcome = BatchOutcome(dropped=skipped)
        if batch:
            if not warmed:
                step.warm_up(ctx)
                warmed = True
            try:
                result = step.process(batch, ctx)
            except Exception as exc:
                log.warning("batch failed, isolating records", step=ctx.step_id, error=_describe(exc))
                result = _isolate(step, batch, ctx, on_error)
            if result.quarantined and on_error != "quarantine":
                rec, why = result.quarantined[0]
                raise StepError(f"step '{ctx.step_id}' could not process record '{rec.get('id')}': {why}. "
                                "Set `on_error: quarantine` to set such records aside")
            _check_ids(result, {r["id"] for r in batch}, ctx.step_id)
            outcome.out += result.out
            outcome.dropped += result.dropped
            outcome.quarantined += result.quarantined
        write_outcome(ctx, outcome, seqs)
        progressed += len(todo)
        ctx.progress(ctx.step_id, progressed, total)


def write_outcome(ctx: StepContext, outcome: BatchOutcome, seqs: dict[str, int]) -> None:
    rows: list[tuple[str, int, str, str | None, dict[str, Any]]] = []
    for rec in outcome.out:
        rows.append((rec["id"], seqs[rec["id"]], "out", None, rec))
    for rec, why in outcome.dropped:
        rows.append((rec["id"], seqs[rec["id"]], "dropped", why, rec))
    for rec, why in outcome.quarantined:
        rows.append((rec["id"], seqs[rec["id"]], "quarantined", why, rec))
        log.warning("record quarantined", step=ctx.step_id, record=rec["id"], reason=why)
    ctx.store.write_records(ctx.run_id, ctx.step_id, rows)
