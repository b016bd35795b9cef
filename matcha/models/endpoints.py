"""Several endpoints (replicas) for one model: spread requests, bound each replica, fail over.

A model served by replicas (vLLM or Ollama on several GPU boxes) is one model to a pipeline: the
provider's ``endpoints`` list them, each with its own ``max_concurrency``. A request goes to the
healthy replica with the most free room (in flight / limit), waiting for one only when every replica
is full. A replica that refuses connections, times out, or answers 429/502/503/504 is set aside for
``failover_seconds`` and the request goes on to the next one, so one replica down costs no failed
record; when every replica has failed, the provider's retries with backoff take over.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

#: statuses that mean "this replica, not this request": try another one
FAILOVER_STATUS = frozenset({429, 502, 503, 504})


class EndpointConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="the replica's URL (for OpenAI-compatible servers, ending in /v1)")
    max_concurrency: int = Field(4, ge=1, le=1024, description="requests in flight to this replica at most")


@dataclass(eq=False)
class Endpoint:
    url: str
    limit: int
    in_flight: int = 0
    down_until: float = 0.0
    failures: int = 0
    served: int = 0
    _sems: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = field(default_factory=dict, repr=False)

    def semaphore(self) -> asyncio.Semaphore:
        """This replica's bound in the running event loop (asyncio semaphores belong to one loop)."""
        loop = asyncio.get_running_loop()
        for other in [lp for lp in self._sems if lp.is_closed()]:
            del self._sems[other]
        if loop not in self._sems:
            self._sems[loop] = asyncio.Semaphore(self.limit)
        return self._sems[loop]


class Pool:
    """The replicas of one model, shared by the sync and async paths of a provider."""

    def __init__(self, endpoints: list[tuple[str, int]], cooldown: float = 30.0):
        if not endpoints:
            raise ValueError("a model needs at least one endpoint")
        self.endpoints = [Endpoint(url.rstrip("/"), limit) for url, limit in endpoints]
        self.cooldown = cooldown
        self._lock = threading.Lock()

    def order(self) -> list[Endpoint]:
        """Replicas to try, best first: healthy ones by free room (ties at random), then those set aside."""
        now = time.monotonic()
        with self._lock:
            return sorted(self.endpoints, key=lambda e: (e.down_until > now, e.in_flight / e.limit, random.random()))

    def enter(self, ep: Endpoint) -> None:
        with self._lock:
            ep.in_flight += 1

    def leave(self, ep: Endpoint, ok: bool | None) -> None:
        """``ok``: True served, False failed (set aside), None: the request failed, not the replica."""
        with self._lock:
            ep.in_flight -= 1
            if ok:
                ep.served += 1
                ep.down_until, ep.failures = 0.0, 0
            elif ok is False:
                ep.failures += 1
                ep.down_until = time.monotonic() + self.cooldown

    async def pick(self) -> Endpoint:
        """A replica with room now (best first), else wait for the best one's room."""
        order = self.order()
        for ep in order:
            if not ep.semaphore().locked():
                return ep
        return order[0]

    def describe(self) -> str:
        return ", ".join(e.url for e in self.endpoints)


T = TypeVar("T")


def failover(pool: Pool, attempt: Callable[[Endpoint], T], replica_fault: Callable[[Exception], bool]) -> T:
    """``attempt`` on the best replica, then on the next ones while the failure is the replica's
    (``replica_fault``); any other failure is the request's and is raised at once."""
    last: Exception | None = None
    for ep in pool.order():
        pool.enter(ep)
        ok: bool | None = None
        try:
            result = attempt(ep)
            ok = True
            return result
        except Exception as exc:
            if not replica_fault(exc):
                raise
            ok, last = False, exc
        finally:
            pool.leave(ep, ok)
    assert last is not None
    raise last


async def afailover(pool: Pool, attempt: Callable[[Endpoint], Awaitable[T]],
                    replica_fault: Callable[[Exception], bool]) -> T:
    """:func:`failover` in an event loop, each replica within its ``max_concurrency``."""
    first = await pool.pick()
    last: Exception | None = None
    for ep in [first, *(e for e in pool.order() if e is not first)]:
        async with ep.semaphore():
            pool.enter(ep)
            ok: bool | None = None
            try:
                result = await attempt(ep)
                ok = True
                return result
            except Exception as exc:
                if not replica_fault(exc):
                    raise
                ok, last = False, exc  # this replica, not this request: try the next one
            finally:
                pool.leave(ep, ok)
    assert last is not None
    raise last
