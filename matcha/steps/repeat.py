"""Bounded loops owned by the executor: ``repeat: {from, until, max_attempts}`` on the last step of a
chain (say ``generate`` → ``voice_score``) writes again the records that do not meet ``until``.

The loop is unrolled when the pipeline is planned: attempt ``n`` (2..``max_attempts``) is a copy of
each step of the chain, with the id ``<step>@<n>``, needing the attempt before it. Each copy is an
ordinary batch step of the graph, so a loop is as durable as any step: a run killed in attempt 2
resumes there, and what attempt 1 wrote is never redone. In each copy, a record that already meets
``until`` passes through untouched; the others go through the step again. The first step of the
chain, for them, first keeps what the attempt before wrote (the fields its steps set, with the
attempt's number) in ``attempts`` and sets ``attempt``: a ``generate`` step then tells the model how
the last attempt was judged, and the attempt and that judgement are part of its cache key (a retry
is a new model call; a resumed retry is not). A record that still fails ``until`` after the last
attempt gets ``flagged`` (why) and goes on, to review: never dropped, never published unseen.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from matcha.steps.base import BatchOutcome, Record, Step, StepContext

#: record fields the loop keeps
ATTEMPT, ATTEMPTS, FLAGGED = "attempt", "attempts", "flagged"


def attempt_salt(rec: Record) -> str:
    """What makes a repeated call distinct: the attempt and how the attempt before was judged."""
    earlier = rec.get(ATTEMPTS)
    if not earlier or not isinstance(earlier, list):  # not the loop's (a record's own field: refused in the loop)
        return ""
    return json.dumps({"attempt": rec.get(ATTEMPT), "previous": earlier[-1]}, sort_keys=True, default=str)


def feedback(rec: Record) -> str:
    """For a prompt: how the last attempt was judged (scores and notes; long texts left out)."""
    earlier = rec.get(ATTEMPTS)
    if not earlier or not isinstance(earlier, list) or not isinstance(earlier[-1], dict):
        return ""
    lines = []
    for key, value in earlier[-1].items():
        if key == ATTEMPT or value is None:
            continue
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = "; ".join(value) or "none"
        if isinstance(value, str | int | float) and len(str(value)) <= 300:
            lines.append(f"- {key}: {value}")
    if not lines:
        return ""
    return (f"\n\nA previous version (attempt {earlier[-1].get(ATTEMPT, len(earlier))}) was judged:\n"
            + "\n".join(lines) + "\nWrite a new version that fixes this.")


class Repeated(Step):
    """One step of a ``repeat`` chain at attempt ``attempt`` >= 2 (see the module doc)."""

    def __init__(self, inner: Step, step_id: str, *, attempt: int, until: Callable[[Record], bool], until_text: str,
                 first: bool, final: bool, keep: list[str], max_attempts: int):
        spec = inner.spec.model_copy(update={"id": step_id})
        super().__init__(spec, inner.config)
        self.inner = type(inner)(spec, inner.config)  # its own instance: warmed up with this copy's context
        self._warm: StepContext | None = None
        # the copy reports the type it repeats, and copies records as deeply as it needs
        self.type_name = inner.type_name  # type: ignore[misc]
        self.mutates_nested = inner.mutates_nested  # type: ignore[misc]
        self.attempt, self.until, self.until_text = attempt, until, until_text
        self.first, self.final, self.keep, self.max_attempts = first, final, keep, max_attempts

    def model_names(self) -> list[str]:
        return self.inner.model_names()

    def written_fields(self) -> list[str]:
        return self.inner.written_fields()

    def warm_up(self, ctx: StepContext) -> None:
        """Deferred to the first batch with a record to write again (most attempts have none)."""

    def process(self, batch: list[Record], ctx: StepContext) -> BatchOutcome:
        result = BatchOutcome()
        todo: list[Record] = []
        done: list[Record] = []
        for rec in batch:
            bad = _loop_fields(rec)
            if bad:
                result.quarantined.append((rec, bad))
            elif self._again(rec):
                todo.append(rec)
            else:
                done.append(rec)
        if self.first:
            for rec in todo:
                if int(rec.get(ATTEMPT) or 1) < self.attempt:  # not yet (a batch retried record by record)
                    kept: dict[str, Any] = {ATTEMPT: int(rec.get(ATTEMPT) or 1), **{f: rec.get(f) for f in self.keep}}
                    rec[ATTEMPTS] = [*(rec.get(ATTEMPTS) or []), kept]
                    rec[ATTEMPT] = self.attempt
        if todo:
            if self._warm is not ctx:
                self.inner.warm_up(ctx)
                self._warm = ctx
            inner = self.inner.process(todo, ctx)
            result.out += inner.out
            result.dropped += inner.dropped
            result.quarantined += inner.quarantined
        if self.final:
            for rec in result.out:
                if not self.until(rec):
                    rec[FLAGGED] = (f"`{self.until_text}` still not met after {self.max_attempts} attempts: "
                                    "look at every attempt before approving")
        result.out = done + result.out
        return result

    def _again(self, rec: Record) -> bool:
        """Whether this attempt writes ``rec`` again: the first step of the attempt decides (``until``
        not met); the later ones follow it (the record is at this attempt), so a record with a new draft
        and the old judgement is always judged again."""
        if self.first:
            return not self.until(rec) or int(rec.get(ATTEMPT) or 1) == self.attempt
        return int(rec.get(ATTEMPT) or 1) == self.attempt


def _loop_fields(rec: Record) -> str:
    """Why ``rec`` cannot go round the loop (a field of the loop's holds the record's own data), or ""."""
    attempts, attempt = rec.get(ATTEMPTS), rec.get(ATTEMPT)
    if attempts is not None and not (isinstance(attempts, list) and all(isinstance(a, dict) for a in attempts)):
        return (f"field '{ATTEMPTS}' holds {type(attempts).__name__}, but a repeat loop keeps its attempts there: "
                "rename that field before the loop")
    if attempt is not None and (isinstance(attempt, bool) or not isinstance(attempt, int)):
        return (f"field '{ATTEMPT}' holds {type(attempt).__name__}, but a repeat loop numbers its attempts there: "
                "rename that field before the loop")
    return ""
