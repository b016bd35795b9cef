"""The one driver every step runs through: stream batches from the store, handle them, write what changed.

:func:`drive` streams a step's input in seq order, skips records the step already wrote (a step
re-entered after a crash resumes at batch granularity), applies ``when``, hands the rest to a
handler and writes one row per record the handler accounted for, holding only the fields that
changed. :func:`run_step` builds the usual handlers on it from a step's class capabilities:
``process`` for batch steps, ``fit`` first for dataset-scoped steps, and ``make_records`` /
``group_of`` for aggregating steps. Approval and publish use :func:`drive` with their own handlers.

A batch whose ``process`` raises is retried record by record to isolate the bad ones, which are
quarantined (``on_error: quarantine``) or fail the run.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator
from itertools import chain, repeat
from operator import attrgetter, is_, is_not, itemgetter, methodcaller
from typing import Any, cast

import numpy as np
import structlog

from matcha.errors import MatchaError, StepError
from matcha.runtime import parts
from matcha.runtime.faults import crash_point
from matcha.runtime.parts import CODE, Batch, Row
from matcha.runtime.tracked import MISSING, Tracked
from matcha.secrets import mask, masking
from matcha.steps.base import BatchOutcome, ColumnOutcome, Columns, DatasetView, Record, Step, StepContext

log = structlog.get_logger("matcha.step")

Handler = Callable[[list[Record]], BatchOutcome]
When = Callable[[Record], bool] | None


def describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if not isinstance(exc, MatchaError):
        text = f"{type(exc).__name__}: {text}"
    return mask(text)[:500]


# -- the driver -------------------------------------------------------------------------------
def input_batches(ctx: StepContext, batch_size: int | None = None, *, skip_done: bool = True,
                  fields: Collection[str] | None = None) -> Iterator[list[tuple[str, int, Record]]]:
    return ctx.store.iter_input(ctx.run_id, ctx.lineage, ctx.needs, batch_size or ctx.batch_size,
                                skip_step=ctx.step_id if skip_done else None, fields=fields)


def _reads(step: Step, when: When) -> list[str] | None:
    """What a dataset-scoped step's passes may read only (see ``Step.reads``)."""
    return step.reads() if step.scope == "dataset" and when is None else None


def drive(step: Step, ctx: StepContext, handler: Handler, when: When, *,
          batches: Iterable[list[tuple[str, int, Record]]] | None = None, total: int | None = None,
          new: bool = False) -> None:
    """Run ``handler`` over the step's input (or ``batches``) and write its outcome.

    ``new``: the records were made by this step (aggregating): every field is stored."""
    store = ctx.store
    if total is None:
        total = store.count_input(ctx.run_id, ctx.needs)
    progressed = store.count_rows(ctx.run_id, ctx.step_id, new=new)
    ctx.progress(ctx.step_id, progressed, total)
    for rows in (batches if batches is not None else input_batches(ctx, fields=_reads(step, when))):
        if batches is not None:  # given batches are not filtered by the store
            done = store.done_seqs(ctx.run_id, ctx.step_id, rows[0][1], rows[-1][1]) if rows else set()
            rows = [r for r in rows if r[1] not in done]
        if not rows:
            continue
        handle_rows(step, ctx, handler, when, rows, new=new)
        progressed += len(rows)
        ctx.progress(ctx.step_id, progressed, total)


def drive_elsewhere(step: Step, ctx: StepContext, when: When,
                    submit: Callable[[list[Record]], Callable[[], BatchOutcome]], window: int) -> None:
    """:func:`drive` with the batches handled elsewhere (Ray actors): ``submit(batch)`` sends one out
    and returns a function waiting for its outcome. Up to ``window`` batches are out at once; their
    outcomes are written in input order, each as :func:`drive` writes it."""
    store = ctx.store
    total = store.count_input(ctx.run_id, ctx.needs)
    progressed = store.count_rows(ctx.run_id, ctx.step_id)
    ctx.progress(ctx.step_id, progressed, total)
    out: deque[tuple[Prepared, Callable[[], BatchOutcome] | None]] = deque()

    def finish() -> None:
        nonlocal progressed
        prepared, wait = out.popleft()
        complete_rows(ctx, prepared, wait() if wait is not None else None)
        progressed += len(prepared.rows)
        ctx.progress(ctx.step_id, progressed, total)

    for rows in input_batches(ctx, fields=_reads(step, when)):
        if not rows:
            continue
        prepared = prepare_rows(step, when, rows)
        out.append((prepared, submit(prepared.batch) if prepared.batch else None))
        while len(out) >= window:
            finish()
    while out:
        finish()


def handle_rows(step: Step, ctx: StepContext, handler: Handler, when: When, rows: list[tuple[str, int, Record]],
                *, new: bool = False, collect: bool = False) -> list[tuple[str, int, Record]]:
    """One batch through ``handler``, its outcome written. With ``collect``, returns the records the
    step passed on, in seq order, exactly as a later read of the store gives them (the rows just
    written, decoded): the input of the next step of a chain."""
    prepared = prepare_rows(step, when, rows, new=new)
    result = handler(prepared.batch) if prepared.batch else None
    return complete_rows(ctx, prepared, result, new=new, collect=collect)


class Prepared:
    """A batch made ready for a handler: what its records held before (to tell what the step
    changed), the records failing ``when`` (dropped), and the ``batch`` to hand over."""

    __slots__ = ("batch", "before", "flat", "ids", "outcome", "rows")

    def __init__(self, rows: list[tuple[str, int, Record]], before: Logged | Before | None, outcome: BatchOutcome,
                 batch: list[Record]):
        self.rows, self.before, self.outcome, self.batch = rows, before, outcome, batch
        self.ids = [r[0] for r in rows]
        self.flat = getattr(rows, "flat", False)


def prepare_rows(step: Step, when: When, rows: list[tuple[str, int, Record]], *, new: bool = False) -> Prepared:
    """The first half of :func:`handle_rows`: everything before the handler runs."""
    ids = [r[0] for r in rows]
    recs = [r[2] for r in rows]
    for rec, rid in zip(recs, ids, strict=True):
        dict.__setitem__(rec, "id", rid)
    before: Logged | Before | None = None
    if not new:
        # a step may change nested values in place, which no note shows: compare against a deep copy
        nested = step.mutates_nested and not getattr(rows, "flat", False) and \
            not _NESTED.isdisjoint(map(type, chain.from_iterable(map(dict.values, recs))))
        before = None if nested else Logged.of(recs, ids)
        before = before or Before(recs, ids, deep=step.mutates_nested)
    outcome = BatchOutcome()
    batch = recs
    if when is not None:
        batch = []
        for rec in recs:
            if when(rec):
                batch.append(rec)
            else:
                outcome.dropped.append((rec, "condition `when` not met"))
    return Prepared(rows, before, outcome, batch)


def complete_rows(ctx: StepContext, prepared: Prepared, result: BatchOutcome | None, *, new: bool = False,
                  collect: bool = False) -> list[tuple[str, int, Record]]:
    """The second half of :func:`handle_rows`: the handler's ``result`` checked and written."""
    outcome = prepared.outcome
    if result is not None:
        check_ids(result, {r["id"] for r in prepared.batch}, ctx.step_id)
        outcome.out += result.out
        outcome.dropped += result.dropped
        outcome.quarantined += result.quarantined
    seqs = dict(zip(prepared.ids, (r[1] for r in prepared.rows), strict=True))
    passed = write_outcome(ctx, outcome, seqs, prepared.before, collect=collect, new=new, flat=prepared.flat)
    crash_point(f"batch.written:{ctx.step_id}")
    return passed


def run_chain(links: list[tuple[Step, StepContext, When, str]],
              on_failure: Callable[[str], None] = lambda step_id: None) -> None:
    """Run consecutive per-batch steps on each batch in memory, one after the other (see :class:`Chain`)."""
    chain = Chain(links, on_failure)
    for rows in input_batches(links[0][1]):
        chain.batch(rows)


class Chain:
    """Consecutive per-batch steps run on each batch in memory, one after the other.

    The first step reads its input from the store (or is fed the records just ingested, see
    :meth:`feed`); each later step gets the records the one before passed on, as the store now holds
    them (decoded from the rows just written), so a step sees the same records whether or not it
    runs in a chain. Every step writes its own rows as it would alone; a batch a later step already
    wrote part of (a resumed run) is left to that step's own pass, which handles whatever the chain
    did not."""

    def __init__(self, links: list[tuple[Step, StepContext, When, str]],
                 on_failure: Callable[[str], None] = lambda step_id: None):
        self.links, self.on_failure = links, on_failure
        self.handlers = [processing(step, ctx, on_error) for step, ctx, _when, on_error in links]
        first = links[0][1]
        self.total = first.store.count_input(first.run_id, first.needs)
        self.progressed = [first.store.count_rows(ctx.run_id, ctx.step_id) for _s, ctx, _w, _e in links]

    def feed(self, rows: list[tuple[str, int, Record]]) -> None:
        """Records given rather than read from the store (exactly as a read would give them): those
        the first step already wrote are left out."""
        first = self.links[0][1]
        done = first.store.done_seqs(first.run_id, first.step_id, rows[0][1], rows[-1][1]) if rows else set()
        if done:
            kept = Batch(r for r in rows if r[1] not in done)
            kept.flat = getattr(rows, "flat", False)
            rows = kept
        if rows:
            self.batch(rows)

    def batch(self, rows: list[tuple[str, int, Record]]) -> None:
        for i, (step, ctx, when, _on_error) in enumerate(self.links):
            if i and ctx.store.done_seqs(ctx.run_id, ctx.step_id, rows[0][1], rows[-1][1]):
                break
            try:
                passed = handle_rows(step, ctx, self.handlers[i], when, rows, collect=i + 1 < len(self.links))
            except Exception:
                self.on_failure(ctx.step_id)
                raise
            self.progressed[i] += len(rows)
            ctx.progress(ctx.step_id, self.progressed[i], self.total if i == 0 else 0)
            rows = passed
            if not rows:
                break


class Feed:
    """Hands the records ingest just stored to a :class:`Chain` whose first step reads only the
    source, in batches of ``size``, so that they are not read back from the store.

    Only what a read would give exactly is handed on (plain JSON values, no secret to mask);
    otherwise, or once a step fails, feeding stops and the chain's own pass after ingest does the
    rest (it skips what was done). A failure is raised there, by that step, not by the source."""

    def __init__(self, chain: Chain, size: int):
        self.chain, self.size = chain, size
        self.buf: list[tuple[str, int, Record]] = []
        self.on = True

    def written(self, rows: list[tuple[str, int, str, str | None, Record]] | None) -> None:
        if not self.on:
            return
        if rows is None or masking():
            self.on = False
            return
        out = [r for r in rows if r[2] == "out"]
        datas = [r[4] for r in out]
        values = chain.from_iterable(map(dict.values, datas))
        if not (_SCALARS.issuperset(map(type, values)) and _STR.issuperset(map(type, chain.from_iterable(datas)))):
            self.on = False
            return
        self.buf += zip(map(_FIRST, out), map(_SECOND, out), map(Tracked, datas), strict=True)
        while self.on and len(self.buf) >= self.size:
            self._run(self.buf[:self.size])
            self.buf = self.buf[self.size:]

    def finish(self) -> None:
        if self.on and self.buf:
            self._run(self.buf)
        self.buf = []

    def _run(self, rows: list[tuple[str, int, Record]]) -> None:
        batch = Batch(rows)
        batch.flat = True  # plain values only (checked above)
        try:
            self.chain.feed(batch)
        except Exception as exc:
            log.info("chain left to its own pass", step=self.chain.links[0][1].step_id, error=describe(exc))
            self.on = False


_FIRST, _SECOND = itemgetter(0), itemgetter(1)


_NESTED = frozenset({dict, list})
#: values that come back from JSON exactly as they went in
_SCALARS = frozenset({str, int, float, bool, type(None)})
_STR = frozenset({str})


def _deep_copy(rec: Record) -> Record:
    if _NESTED.isdisjoint(map(type, rec.values())):  # a flat record (the usual case): checked in C
        return rec.copy()
    return {k: copy.deepcopy(v) if isinstance(v, dict | list) else v for k, v in rec.items()}


class Before:
    """What a batch's records held before a step, to tell what it changed.

    When every record has the same fields in the same order (the usual case: rows of one source)
    the values are kept as one flat list, taken in C without a copy per record, and the change is
    found a column at a time (:meth:`columns`). Otherwise each record is copied (deeply for a step
    that changes nested values in place, unless no value is nested)."""

    __slots__ = ("copies", "flat", "keys", "pos")

    def __init__(self, recs: list[Record], ids: list[str], *, deep: bool = False):
        self.pos = dict(zip(ids, range(len(ids)), strict=True))
        self.keys: tuple[str, ...] | None = None
        self.flat: list[Any] = []
        self.copies: dict[str, Record] = {}
        shapes = set(map(tuple, map(dict.keys, recs)))
        if len(shapes) == 1:
            flat = list(chain.from_iterable(map(dict.values, recs)))
            if not deep or _NESTED.isdisjoint(map(type, flat)):
                self.keys, self.flat = shapes.pop(), flat
                return
        self.copies = {rid: _deep_copy(r) if deep else dict(r) for rid, r in zip(ids, recs, strict=True)}

    def get(self, rid: str) -> Record | None:
        if self.keys is None:
            return self.copies.get(rid)
        i = self.pos.get(rid)
        if i is None:
            return None
        k = len(self.keys)
        return dict(zip(self.keys, self.flat[i * k:(i + 1) * k], strict=True))

    def columns(self, recs: list[Record]) -> tuple[list[str], list[list[Any]], list[str], list[int]] | None:
        """What ``recs`` (records of this batch, any order) changed, by column: the fields any of
        them changed or added (in their order), each as a column of values, the fields all of them
        removed, and each record's index in the batch. None when the records do not all have the
        same fields in the same order (then :func:`changes` compares record by record)."""
        if self.keys is None or not recs:
            return None
        shapes = set(map(tuple, map(dict.keys, recs)))
        if len(shapes) != 1:
            return None
        after = shapes.pop()
        idx = list(map(self.pos.__getitem__, map(_ID, recs)))
        same_order = len(idx) == len(self.pos) and idx == sorted(idx)
        k = len(self.keys)
        at = {key: j for j, key in enumerate(self.keys)}
        fields, cols = [], []
        for key in after:
            if key == "id":
                continue
            col = list(map(itemgetter(key), recs))
            j = at.get(key)
            if j is not None:
                old = self.flat[j::k]
                if not same_order:
                    old = list(map(old.__getitem__, idx))
                if not any(map(is_not, old, col)):
                    continue
            fields.append(key)
            cols.append(col)
        kept = set(after)
        gone = [key for key in self.keys if key not in kept and key != "id"]
        return fields, cols, gone, idx


_ID = itemgetter("id")
_WAS = attrgetter("was")


class Logged:
    """What a batch of :class:`Tracked` records held before a step, from the changes they noted
    (no copy taken). :meth:`columns` reads what the step changed when it changed the records it
    was given (not new dicts)."""

    __slots__ = ("_pos", "ids", "recs")

    def __init__(self, recs: list[Tracked], ids: list[str]):
        self.recs, self.ids = recs, ids
        self._pos: dict[str, int] | None = None

    @property
    def pos(self) -> dict[str, int]:
        if self._pos is None:
            self._pos = dict(zip(self.ids, range(len(self.ids)), strict=True))
        return self._pos

    @classmethod
    def of(cls, recs: list[Record], ids: list[str]) -> Logged | None:
        if set(map(type, recs)) != {Tracked}:
            return None
        mine = cast(list[Tracked], recs)
        deque(map(setattr, mine, repeat("was"), repeat(None)), maxlen=0)  # forget the last step's notes, in C
        return cls(mine, ids)

    def get(self, rid: str) -> Record | None:
        i = self.pos.get(rid)
        return None if i is None else self.recs[i].original()

    def columns(self, recs: list[Record]) -> tuple[list[str], list[list[Any]], list[str], list[int]] | None:
        """As :meth:`Before.columns`, or None when some record is not one of the batch's own, or
        lost a field others kept."""
        if len(recs) == len(self.recs) and all(map(is_, recs, self.recs)):
            idx = list(range(len(recs)))  # the batch itself, in order (the usual case)
        else:
            found = list(map(self.pos.get, map(_ID, recs)))
            if None in found or not all(map(is_, map(self.recs.__getitem__, found), recs)):  # type: ignore[arg-type]
                return None
            idx = cast(list[int], found)
        notes = list(filter(None, map(_WAS, self.recs)))  # forgotten when the next step starts (see `of`)
        touched = set().union(*notes) - {"id"}
        fields, cols, gone = [], [], []
        first = [k for k in recs[0] if k in touched] if recs else []
        for key in [*first, *sorted(touched.difference(first))]:
            col = list(map(methodcaller("get", key, MISSING), recs))
            if not any(map(is_, col, repeat(MISSING))):
                fields.append(key)
                cols.append(col)
            elif all(map(is_, col, repeat(MISSING))):
                gone.append(key)
            else:
                return None  # some records have it, some not: record by record
        return fields, cols, gone, idx


def changes(before: Record | None, after: Record) -> tuple[Record, list[str]]:
    """The fields of ``after`` that are new or were replaced, and the fields it no longer has.

    Steps replace a field's value to change it; a step that changes nested values in place declares
    ``mutates_nested`` and gets a deep copy to compare against."""
    if before is None:
        return {k: v for k, v in after.items() if k != "id"}, []
    changed = {k: v for k, v in after.items() if k not in before or before[k] is not v}
    changed.pop("id", None)
    if before.keys() <= after.keys():  # nothing removed (the usual case)
        return changed, []
    return changed, sorted(before.keys() - after.keys() - {"id"})


def write_outcome(ctx: StepContext, outcome: BatchOutcome, seqs: dict[str, int],
                  before: Before | Logged | dict[str, Record] | None = None, links: dict[str, int] | None = None, *,
                  collect: bool = False, new: bool = False, flat: bool = False) -> list[tuple[str, int, Record]]:
    """Write a batch's outcome as one part. With ``collect``, returns ``(id, seq, record)`` of each
    record passed on, in seq order, as a later read of the store gives it: its fields before the
    step, updated with the changes as stored (JSON-normalised, secrets masked). ``flat``: the input
    records held no list or object (see :class:`Batch`)."""
    if isinstance(before, Before | Logged) and not links and not outcome.quarantined and not new:
        fast = _write_columns(ctx, outcome, seqs, before, collect, flat)
        if fast is not None:
            return fast
    before = before or {}
    rows: list[Row] = []
    for rec in outcome.out:
        data, gone = changes(before.get(rec["id"]), rec)
        rows.append((seqs[rec["id"]], "out", None, data, gone, None))
    for rec, why in outcome.dropped:
        status = "grouped" if links and rec["id"] in links else "dropped"
        data, gone = changes(before.get(rec["id"]), rec)
        rows.append((seqs[rec["id"]], status, why, data, gone, (links or {}).get(rec["id"])))
    for rec, why in outcome.quarantined:
        # the whole record, as the step had it: what someone fixing it needs to see
        rows.append((seqs[rec["id"]], "quarantined", why, {k: v for k, v in rec.items() if k != "id"}, None, None))
        log.warning("record quarantined", step=ctx.step_id, record=rec["id"], reason=why)
    # a record whose changes are plain JSON values (and no secret to mask) reads back as it is
    same = collect and not masking()
    exact = [same and status == "out" and changed is not None and _SCALARS.issuperset(map(type, changed.values()))
             and _STR.issuperset(map(type, changed)) for _seq, status, _why, changed, _gone, _link in rows]
    stored = ctx.store.write_rows(ctx.run_id, ctx.step_id, rows, made=new, decoded=collect and not all(exact))
    if not collect:
        return []
    ids = {seq: rid for rid, seq in seqs.items()}
    out = []
    after = {rec["id"]: rec for rec in outcome.out}
    order = sorted(range(len(rows)), key=lambda i: rows[i][0])
    for n, i in enumerate(order):
        seq, status, _why, _changed, removed, _link = rows[i]
        if status != "out":
            continue
        rid = ids[seq]
        if exact[i]:
            out.append((rid, seq, after[rid]))  # no copy needed
            continue
        assert stored is not None
        data = stored[n]
        rec = dict(before.get(rid) or {})
        rec.update(data)
        for k in removed or ():
            rec.pop(k, None)
        rec["id"] = rid
        out.append((rid, seq, rec))
    return out


def _write_columns(ctx: StepContext, outcome: BatchOutcome, seqs: dict[str, int], before: Before | Logged,
                   collect: bool, flat: bool) -> list[tuple[str, int, Record]] | None:
    """:func:`write_outcome` for a batch whose records all have the same fields before and after the
    step (and none quarantined): the change found and stored a column at a time, one table per part.
    None when the batch is not of that shape."""
    recs = outcome.out + [rec for rec, _why in outcome.dropped]
    found = before.columns(recs) if recs else None
    if found is None:
        return None
    fields, cols, gone, idx = found
    # plain JSON values (and no secret to mask) read back as they are: the next step of a chain can
    # take the records themselves
    exact = not masking() and all(_SCALARS.issuperset(map(type, col)) for col in cols)
    if collect and not exact:
        return None  # the record-by-record path decodes what was stored
    n, n_out = len(recs), len(outcome.out)
    order = np.argsort(np.asarray(idx), kind="stable")
    where = np.empty(n, dtype=np.int64)
    where[order] = np.arange(n)  # a record's index in the part
    ordered = order.tolist()
    if ordered != list(range(n)):
        cols = [list(map(col.__getitem__, ordered)) for col in cols]
    codes = np.zeros(n, dtype=np.uint8)
    codes[n_out:] = CODE["dropped"]
    seq_of = np.fromiter(map(seqs.__getitem__, map(_ID, recs)), dtype=np.int64, count=n)
    data: list[Record] | dict[str, Any] = {"keys": fields, "cols": cols} \
        if fields else [{} for _ in range(n)]
    reasons = [[int(where[n_out + i]), why] for i, (_rec, why) in enumerate(outcome.dropped)]
    notes = {"gone": [[gone, None]]} if gone else {}
    ctx.store.write_part(ctx.run_id, ctx.step_id, seq_of[order], codes[order].tobytes(), data, {*fields, *gone},
                         reasons, notes)
    if not collect:
        return []
    head = idx[:n_out]
    out = outcome.out if head == sorted(head) else [recs[i] for i in ordered if i < n_out]  # in seq order
    out_ids = list(map(_ID, out))
    passed = Batch(zip(out_ids, map(seqs.__getitem__, out_ids), out, strict=True))
    passed.flat = flat and exact  # what the step wrote is plain values too
    return passed


def check_ids(outcome: BatchOutcome, batch_ids: set[str], step_id: str) -> None:
    seen: set[str] = set()
    for rec in [*outcome.out, *(r for r, _ in outcome.dropped), *(r for r, _ in outcome.quarantined)]:
        rid = rec.get("id")
        if rid not in batch_ids:
            raise StepError(f"step '{step_id}' returned a record with id {rid!r} that was not in its input. "
                            "Steps must keep each record's 'id' and may not invent records")
        if rid in seen:
            raise StepError(f"step '{step_id}' returned record {rid!r} twice. Return each input record once")
        seen.add(rid)


# -- handlers ---------------------------------------------------------------------------------
def processing(step: Step, ctx: StepContext, on_error: str, *, warmed: bool = False) -> Handler:
    """``step.process`` with warm-up on first use (unless ``warmed``) and bad records isolated."""

    def handle(batch: list[Record]) -> BatchOutcome:
        nonlocal warmed
        if not warmed:
            step.warm_up(ctx)
            warmed = True
        try:
            result = step.process(batch, ctx)
        except Exception as exc:
            log.warning("batch failed, isolating records", step=ctx.step_id, error=describe(exc))
            result = _isolate(step, batch, ctx, on_error)
        if result.quarantined and on_error != "quarantine":
            rec, why = result.quarantined[0]
            raise StepError(f"step '{ctx.step_id}' could not process record '{rec.get('id')}': {why}. "
                            "Set `on_error: quarantine` to set such records aside")
        return result

    return handle


def _isolate(step: Step, batch: list[Record], ctx: StepContext, on_error: str) -> BatchOutcome:
    merged = BatchOutcome()
    for rec in batch:
        try:
            one = step.process([rec], ctx)
        except Exception as exc:
            if on_error != "quarantine":
                raise StepError(f"step '{ctx.step_id}' failed on record '{rec.get('id')}': {describe(exc)}. "
                                "Fix the record or the step, or set `on_error: quarantine` to set bad records "
                                "aside, then `matcha resume RUN`") from exc
            merged.quarantined.append((rec, describe(exc)))
            continue
        merged.out += one.out
        merged.dropped += one.dropped
        merged.quarantined += one.quarantined
    return merged


# -- step kinds -------------------------------------------------------------------------------
def input_view(ctx: StepContext, when: When) -> DatasetView:
    """The step's whole input as a dataset (records failing ``when`` left out)."""

    def batches(size: int | None, fields: Collection[str] | None) -> Iterator[list[Record]]:
        # `when` may read any field
        for rows in input_batches(ctx, size, skip_done=False, fields=fields if when is None else None):
            recs = [rec for _rid, _seq, rec in rows]
            if when is not None:
                recs = [r for r in recs if when(r)]
            if recs:
                yield recs

    count = ctx.store.count_input(ctx.run_id, ctx.needs)
    if when is not None:
        return DatasetView(count, batches)  # columns made from the records that meet `when`
    return DatasetView(count, batches, _columns(ctx, ctx.lineage, ctx.needs))


def _columns(ctx: StepContext, lineage: list[str], needs: list[str]
             ) -> Callable[[int | None, Collection[str]], Iterator[Columns]]:
    def columns(size: int | None, fields: Collection[str]) -> Iterator[Columns]:
        for seqs, values, ids in ctx.store.iter_columns(ctx.run_id, lineage, needs, size or _column_batch(ctx), fields):
            yield Columns(values, len(seqs), ids, seqs)

    return columns


def run_step(step: Step, ctx: StepContext, when: When, on_error: str) -> None:
    """Run a step over its whole input, the way its class says."""
    if step.scope == "dataset":
        state = ctx.store.step_state(ctx.run_id, ctx.step_id)
        if state is None:
            step.warm_up(ctx)
            state = step.fit(input_view(ctx, when), ctx)
            crash_point(f"fit.done:{ctx.step_id}")
            ctx.store.set_step_state(ctx.run_id, ctx.step_id, state)
        ctx.state = state
    if step.aggregates:
        _aggregate(step, ctx, when, on_error)
    elif step.columnar and when is None:
        _drive_columns(step, ctx, on_error)
    else:
        drive(step, ctx, processing(step, ctx, on_error), when)
    if step.scope == "dataset":
        figures = step.summarize(upstream_view(ctx, ctx.step_id, [*ctx.lineage, ctx.step_id]), ctx)
        if figures:
            ctx.store.add_step_extra(ctx.run_id, ctx.step_id, figures, replace=True)


def _column_batch(ctx: StepContext) -> int:
    """Records per batch of a column pass (``settings.column_batch_size``, 4,096 by default): a batch
    holds a few fields, not whole records, and what a pass costs per batch (finding its parts, its
    ids, one write) is paid 16 times less than at the default ``batch_size``."""
    return ctx.column_batch_size


def _drive_columns(step: Step, ctx: StepContext, on_error: str) -> None:
    """The driver for a ``columnar`` step: its input read a column at a time (the fields of
    ``reads``), the fields it sets written as one table per batch. A batch that fails goes through
    the record-by-record path, which isolates the failing records."""
    store = ctx.store
    total = store.count_input(ctx.run_id, ctx.needs)
    progressed = store.count_rows(ctx.run_id, ctx.step_id)
    ctx.progress(ctx.step_id, progressed, total)
    fields = step.reads() or []
    warmed = False
    fallback: Handler | None = None  # the record path, for a batch that fails
    for seqs, values, ids in store.iter_columns(ctx.run_id, ctx.lineage, ctx.needs, _column_batch(ctx), fields,
                                                skip_step=ctx.step_id):
        batch = Columns(values, len(seqs), ids, seqs)
        if not warmed:
            step.warm_up(ctx)
            warmed = True
        try:
            result = step.process_columns(batch, ctx)
        except Exception as exc:
            log.warning("batch failed, isolating records", step=ctx.step_id, error=describe(exc))
            rows: list[tuple[str, int, Record]] = [
                (rid, seq, Tracked(zip(fields, vals, strict=True), id=rid)) for rid, seq, vals in
                    zip(batch.ids, seqs.tolist(), zip(*(values[f] for f in fields), strict=True), strict=True)]
            fallback = fallback or processing(step, ctx, on_error, warmed=True)
            handle_rows(step, ctx, fallback, None, rows)
        else:
            _write_column_outcome(ctx, batch, result, on_error)
        progressed += len(seqs)
        ctx.progress(ctx.step_id, progressed, total)


def _write_column_outcome(ctx: StepContext, batch: Columns, result: ColumnOutcome, on_error: str) -> None:
    n = len(batch)
    bad = {i: why for i, why in result.quarantined.items() if 0 <= i < n}
    if bad and on_error != "quarantine":
        i, why = min(bad.items())
        raise StepError(f"step '{ctx.step_id}' could not process record '{batch.ids[i]}': {why}. "
                        "Set `on_error: quarantine` to set such records aside")
    wrong = {f: len(v) for f, v in result.fields.items() if len(v) != n}
    if wrong:
        raise StepError(f"step '{ctx.step_id}' returned columns of {wrong} values for a batch of {n} records")
    codes = np.zeros(n, dtype=np.uint8)
    for i, why in bad.items():
        codes[i] = CODE["quarantined"]
        log.warning("record quarantined", step=ctx.step_id, record=batch.ids[i], reason=why)
    fields = [f for f in result.fields if f != "id"]
    data: list[Record] | dict[str, Any] = {"keys": fields, "cols": [list(result.fields[f]) for f in fields]} \
        if fields else [{} for _ in range(n)]
    ctx.store.write_part(ctx.run_id, ctx.step_id, np.asarray(batch.seqs, dtype=np.int64), codes.tobytes(), data,
                         set(fields), [[i, why] for i, why in sorted(bad.items())], {})
    crash_point(f"batch.written:{ctx.step_id}")


def _aggregate(step: Step, ctx: StepContext, when: When, on_error: str) -> None:
    made = step.make_records(ctx)
    seqs = ctx.store.make_items(ctx.run_id, ctx.step_id, [str(r["id"]) for r in made])

    def grouping(batch: list[Record]) -> BatchOutcome:
        out = BatchOutcome()
        for rec, into in zip(batch, step.group_of(batch, ctx), strict=True):
            if into is None:
                out.dropped.append((rec, "belongs to no group"))
            elif into not in seqs:
                raise StepError(f"step '{ctx.step_id}' grouped record '{rec['id']}' into '{into}', "
                                "which is not one of the records it made")
            else:
                links[rec["id"]] = seqs[into]
                out.dropped.append((rec, f"grouped into {into}"))
        return out

    links: dict[str, int] = {}
    _drive_grouping(step, ctx, grouping, when, links, seqs)
    new = [(str(r["id"]), seqs[str(r["id"])], dict(r)) for r in made]
    chunks = [new[i:i + ctx.batch_size] for i in range(0, len(new), ctx.batch_size)]
    drive(step, ctx, processing(step, ctx, on_error), None, batches=chunks, total=len(new), new=True)


def _drive_grouping(step: Step, ctx: StepContext, grouping: Handler, when: When, links: dict[str, int],
                    made: dict[str, int]) -> None:
    store = ctx.store
    total = store.count_input(ctx.run_id, ctx.needs)
    progressed = store.count_rows(ctx.run_id, ctx.step_id)
    if when is None and step.reads() is not None:
        for at, values, ids in store.iter_columns(ctx.run_id, ctx.lineage, ctx.needs, _column_batch(ctx),
                                                  step.reads() or [], skip_step=ctx.step_id):
            _group_columns(step, ctx, Columns(values, len(at), ids, at), made)
            progressed += len(at)
            ctx.progress(ctx.step_id, progressed, total)
        return
    for rows in input_batches(ctx, fields=_reads(step, when)):
        seqs = {rid: seq for rid, seq, _ in rows}
        outcome = BatchOutcome()
        batch = []
        for rid, _seq, rec in rows:
            rec["id"] = rid
            if when is None or when(rec):
                batch.append(rec)
            else:
                outcome.dropped.append((rec, "condition `when` not met"))
        links.clear()
        if batch:
            outcome.dropped += grouping(batch).dropped
        # a grouped record keeps nothing new: its row says where it went
        kept = BatchOutcome(dropped=[({"id": r["id"]}, why) for r, why in outcome.dropped])
        write_outcome(ctx, kept, seqs, {r["id"]: {"id": r["id"]} for r, _ in outcome.dropped}, links)
        crash_point(f"batch.written:{ctx.step_id}")
        progressed += len(rows)
        ctx.progress(ctx.step_id, progressed, total)


def _group_columns(step: Step, ctx: StepContext, batch: Columns, made: dict[str, int]) -> None:
    """One batch of an aggregating step's grouping pass, read and written a column at a time: each
    record's row is ``grouped`` with a link to the record it went into (the reason, "grouped into
    ...", is told from the link when read), or ``dropped`` when it belongs to no group."""
    into = step.group_of_columns(batch, ctx)
    if len(into) != len(batch):
        raise StepError(f"step '{ctx.step_id}' grouped {len(into)} records of a batch of {len(batch)}")
    codes = np.full(len(batch), CODE["grouped"], dtype=np.uint8)
    reasons: list[list[Any]] = []
    to = np.full(len(batch), -1, dtype=np.int64)
    for i, group in enumerate(into):
        if group is None:
            codes[i] = CODE["dropped"]
            reasons.append([i, "belongs to no group"])
            continue
        seq = made.get(group)
        if seq is None:
            raise StepError(f"step '{ctx.step_id}' grouped record '{batch.ids[i]}' into '{group}', "
                            "which is not one of the records it made")
        to[i] = seq
    ctx.store.write_part(ctx.run_id, ctx.step_id, np.asarray(batch.seqs, dtype=np.int64), codes.tobytes(),
                         [{} for _ in range(len(batch))], set(), reasons, parts.link_notes(to))
    crash_point(f"batch.written:{ctx.step_id}")


def upstream_view(ctx: StepContext, step_id: str, lineage: list[str]) -> DatasetView:
    """The output of ``step_id`` (merged over ``lineage``, its own lineage plus itself)."""

    def batches(size: int | None, fields: Collection[str] | None) -> Iterator[list[Record]]:
        for rows in ctx.store.iter_input(ctx.run_id, lineage, [step_id], size or ctx.batch_size, fields=fields):
            yield [rec for _rid, _seq, rec in rows]

    return DatasetView(ctx.store.count_input(ctx.run_id, [step_id]), batches, _columns(ctx, lineage, [step_id]))


def run_batches(step: Step, ctx: StepContext, when: When, on_error: str) -> None:
    """The default way a step runs (kept for steps written against the earlier name)."""
    run_step(step, ctx, when, on_error)
