"""Helpers shared by the model providers: retry with backoff, per-loop async clients, and the
schema instruction.

Retries use exponential backoff with *full jitter* (a uniformly random delay between 0 and
``min(max_delay, base_delay * 2**attempt)``), which spreads retries of many concurrent callers
instead of having them hit a queue-full server (Ollama answers 503 beyond ``OLLAMA_MAX_QUEUE``)
again at the same instant. The caller decides what is retryable; a server's ``Retry-After``
hint, when the predicate returns one, raises the delay to at least that value.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
C = TypeVar("C")

#: What a retry predicate returns: ``None`` = do not retry, else a minimum delay in seconds
#: (0.0 when the server gave no ``Retry-After``).
RetryDecision = float | None

#: HTTP statuses worth retrying: overloaded or restarting servers. A plain 500 is not in the list:
#: model servers use it for deterministic failures (out of memory, bad model file).
RETRY_STATUS = frozenset({408, 429, 502, 503, 504})


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter. ``max_retries`` counts retries, not attempts."""

    max_retries: int = 5
    base_delay: float = 0.5
    max_delay: float = 20.0

    def delay(self, attempt: int, at_least: float = 0.0) -> float:
        """Delay before retry number ``attempt`` (0-based)."""
        ceiling = min(self.max_delay, self.base_delay * (2**attempt))
        return max(random.uniform(0.0, ceiling), min(at_least, self.max_delay))


async def aretry(
    call: Callable[[], Awaitable[T]],
    should_retry: Callable[[BaseException], RetryDecision],
    backoff: Backoff,
) -> T:
    """Await ``call()`` until it succeeds, the error is not retryable, or retries run out.

    The last error is re-raised unchanged so the caller can translate it.
    """
    attempt = 0
    while True:
        try:
            return await call()
        except Exception as exc:
            decision = should_retry(exc)
            if decision is None or attempt >= backoff.max_retries:
                raise
            await asyncio.sleep(backoff.delay(attempt, decision))
            attempt += 1


def retry(
    call: Callable[[], T],
    should_retry: Callable[[BaseException], RetryDecision],
    backoff: Backoff,
) -> T:
    """Blocking twin of :func:`aretry` for the synchronous ``embed()`` path."""
    attempt = 0
    while True:
        try:
            return call()
        except Exception as exc:
            decision = should_retry(exc)
            if decision is None or attempt >= backoff.max_retries:
                raise
            time.sleep(backoff.delay(attempt, decision))
            attempt += 1


def retry_after_seconds(value: str | None) -> float:
    """Parse a ``Retry-After`` header given in seconds; 0.0 when absent or an HTTP date."""
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        return 0.0


def schema_instruction(schema: dict[str, Any]) -> str:
    """The sentence appended to a prompt when output is constrained to ``schema``.

    Constrained decoding alone guarantees the shape, not sensible content: models fill the
    fields better when they are told the schema as well.
    """
    return (
        "\n\nAnswer with a single JSON object that matches this JSON schema, and nothing else:\n"
        + json.dumps(schema, ensure_ascii=False, separators=(",", ":"))
        + "\n"
    )


class PerLoop(Generic[C]):
    """One async HTTP client per event loop.

    httpx async connections belong to the loop that opened them, and a provider may be used
    from several loops over its life (``asyncio.run`` per job, tests). Clients of loops that
    have closed are dropped; call :meth:`aclose` inside a loop or :meth:`close` outside one.
    """

    def __init__(self, factory: Callable[[], C], closer: Callable[[C], Coroutine[Any, Any, None]]):
        self._factory = factory
        self._closer = closer
        self._clients: dict[asyncio.AbstractEventLoop, C] = {}

    def get(self) -> C:
        loop = asyncio.get_running_loop()
        for other in [lp for lp in self._clients if lp.is_closed()]:
            del self._clients[other]
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = self._factory()
        return client

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        client = self._clients.pop(loop, None)
        if client is not None:
            await self._closer(client)
        self.close()

    def close(self) -> None:
        for loop, client in list(self._clients.items()):
            del self._clients[loop]
            if not loop.is_closed() and not loop.is_running():
                loop.run_until_complete(self._closer(client))
            elif loop.is_running():  # possibly in another thread: schedule, do not wait
                asyncio.run_coroutine_threadsafe(self._closer(client), loop)
