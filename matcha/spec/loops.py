"""``repeat:`` loops checked and unrolled into plain steps (see :mod:`matcha.steps.repeat`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from matcha.spec import graph
from matcha.spec.conditions import ConditionError, compile_condition
from matcha.spec.models import PipelineSpec
from matcha.steps.base import Step
from matcha.steps.repeat import ATTEMPT, ATTEMPTS, FLAGGED, Repeated

if TYPE_CHECKING:
    from matcha.spec.load import PlannedStep

Issue = Callable[[tuple[str | int, ...], str, str], None]
Record = dict[str, Any]


def loop_body(spec: PipelineSpec, i: int, needs: dict[str, list[str]], steps: dict[str, Step],
              issue: Issue) -> list[str] | None:
    """The ids of the loop ending at step ``i`` (first to last), or None after reporting why it is not one."""
    s = spec.steps[i]
    assert s.repeat is not None
    where = ("steps", i, "repeat")
    consumers: dict[str, list[str]] = {}
    for sid, deps in needs.items():
        for d in deps:
            consumers.setdefault(d, []).append(sid)
    body = [s.id]
    while body[-1] != s.repeat.from_:
        deps = needs.get(body[-1], [])
        if len(deps) != 1 or deps[0] == graph.SOURCE:
            issue((*where, "from"), f"'{s.repeat.from_}' is not upstream of '{s.id}' through a chain of steps each "
                  "needing only the one before", "Name the first step of the loop (e.g. the generate step whose "
                  "output this step judges)")
            return None
        body.append(deps[0])
    body.reverse()
    for sid in body:
        st = steps[sid]
        if st.scope != "batch" or st.aggregates or st.approves or st.publishes or type(st).execute is not Step.execute:
            issue(where, f"step '{sid}' ({st.type_name}) cannot be repeated: only steps that handle records batch by "
                  "batch can be in a loop (not approval, publish, dataset-scoped or vector steps)",
                  "Loop over the generating and judging steps only")
            return None
    for sid in body[:-1]:
        others = [c for c in consumers.get(sid, []) if c not in body]
        if others:
            issue(where, f"step '{sid}' inside the loop also feeds '{others[0]}': only the loop's last step "
                  f"('{s.id}') may be read after it", f"Make '{others[0]}' need '{s.id}' instead")
            return None
    for sid in body:
        if any(f"{sid}@{n}" in steps for n in range(2, s.repeat.max_attempts + 1)):
            issue(where, f"the ids of the repeated steps ('{sid}@2'...) are taken", "Rename those steps")
            return None
    return body


def check_loops(spec: PipelineSpec, needs: dict[str, list[str]], steps: dict[str, Step], issue: Issue
                ) -> dict[str, tuple[list[str], Callable[[Record], bool]]]:
    """Every ``repeat`` checked: loop end -> (the loop's steps, the compiled ``until``)."""
    loops = {}
    in_loop: dict[str, str] = {}
    for i, s in enumerate(spec.steps):
        if s.repeat is None or s.id not in steps:
            continue
        try:
            until = compile_condition(s.repeat.until)
        except ConditionError as exc:
            issue(("steps", i, "repeat", "until"), str(exc), "Write a condition such as \"voice_score >= 70\"")
            continue
        body = loop_body(spec, i, needs, steps, issue)
        if body is None:
            continue
        clash = next((sid for sid in body if sid in in_loop), None)
        if clash:
            issue(("steps", i, "repeat"), f"step '{clash}' is already in the loop of '{in_loop[clash]}'",
                  "Loops cannot overlap or nest")
            continue
        in_loop.update((sid, s.id) for sid in body)
        loops[s.id] = (body, until)
    return loops


def unroll(spec: PipelineSpec, planned: dict[str, PlannedStep],
           loops: dict[str, tuple[list[str], Callable[[Record], bool]]]) -> dict[str, PlannedStep]:
    """The plan with each loop's attempts 2..n as steps ``<id>@<n>`` right after the loop's last step;
    steps that needed the loop's end now need its last attempt."""
    from matcha.spec.load import PlannedStep

    if not loops:
        return planned
    repeats = {s.id: s.repeat for s in spec.steps if s.repeat is not None}
    ends = {sid: f"{sid}@{repeats[sid].max_attempts}" for sid in loops}  # type: ignore[union-attr]
    out: dict[str, PlannedStep] = {}
    for sid, ps in planned.items():
        out[sid] = PlannedStep(ps.index, ps.step, [ends.get(d, d) for d in ps.needs], ps.when)
        if sid not in loops:
            continue
        body, until = loops[sid]
        rep = repeats[sid]
        assert rep is not None
        keep = list(dict.fromkeys(f for b in body for f in planned[b].step.written_fields()
                                  if f not in (ATTEMPT, ATTEMPTS, FLAGGED)))
        prev = sid
        for n in range(2, rep.max_attempts + 1):
            for j, b in enumerate(body):
                original = planned[b]
                clone = Repeated(original.step, f"{b}@{n}", attempt=n, until=until, until_text=rep.until,
                                 first=j == 0, final=n == rep.max_attempts and j == len(body) - 1, keep=keep,
                                 max_attempts=rep.max_attempts)
                # no `when`: a record reaching a copy met it on attempt 1, and one that already meets `until`
                # must pass through whatever it holds now
                out[clone.id] = PlannedStep(original.index, clone, [prev], None)
                prev = clone.id
    return out
