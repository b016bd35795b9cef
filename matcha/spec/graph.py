"""Graph checks on the step list: needs, cycles and the approval gate."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

SOURCE = "__source__"


def find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """``edges`` maps a step to the steps it needs. Return one cycle as a path, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in edges.get(node, []):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in edges:
        if node not in state and (found := visit(node)):
            # edges point to dependencies; show the cycle in data-flow order
            return list(reversed(found))
    return None


def ungated_path(needs: dict[str, list[str]], publishers: set[str], approvals: set[str]) -> list[str] | None:
    """A path from the source to a publisher that avoids every approval step, or None.

    ``needs`` maps each step to its inputs (the source is :data:`SOURCE`).
    """
    children: dict[str, list[str]] = {}
    for step, deps in needs.items():
        for dep in deps:
            children.setdefault(dep, []).append(step)
    parent: dict[str, str] = {}
    queue = deque([SOURCE])
    seen = {SOURCE}
    while queue:
        node = queue.popleft()
        if node in publishers:
            path = [node]
            while path[-1] != SOURCE:
                path.append(parent[path[-1]])
            return ["source", *reversed(path[:-1])]
        for child in children.get(node, []):
            if child not in seen and child not in approvals:
                seen.add(child)
                parent[child] = node
                queue.append(child)
    return None


def upstream(needs: dict[str, list[str]], step: str) -> set[str]:
    out: set[str] = set()
    todo = list(needs.get(step, []))
    while todo:
        node = todo.pop()
        if node not in out:
            out.add(node)
            todo.extend(needs.get(node, []))
    out.discard(SOURCE)
    return out


def nearest(needs: dict[str, list[str]], step: str, match: Callable[[str], bool]) -> str | None:
    """The closest upstream step (breadth first over ``needs``, in listed order) for which ``match`` holds."""
    seen: set[str] = set()
    queue = [d for d in needs.get(step, []) if d != SOURCE]
    while queue:
        node = queue.pop(0)
        if node in seen:
            continue
        seen.add(node)
        if match(node):
            return node
        queue.extend(d for d in needs.get(node, []) if d != SOURCE)
    return None
