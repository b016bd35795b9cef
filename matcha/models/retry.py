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
import contextlib
import json
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
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
    """One async HTTP client per event loop, closed when that loop shuts down.

    httpx async connections belong to the loop that opened them, and a provider is used from a
    new loop for every ``asyncio.run`` (one per batch in the runtime). Creating a client costs
    about 20 ms (TLS context), so each loop keeps one for all its calls. Closing relies on the
    loop's async-generator shutdown: ``asyncio.run`` finalises every live async generator before
    closing the loop, and a small guard generator closes the client in its ``finally``.
    """

    def __init__(self, factory: Callable[[], C], closer: Callable[[C], Coroutine[Any, Any, None]]):
        self._factory = factory
        self._closer = closer
        self._clients: dict[asyncio.AbstractEventLoop, tuple[C, AsyncGenerator[None, None]]] = {}

    async def _guard(self, client: C) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await self._closer(client)

    def get(self) -> C:
        """The client of the running loop (call from a coroutine)."""
        loop = asyncio.get_running_loop()
        for other in [lp for lp in self._clients if lp.is_closed()]:
            del self._clients[other]
        entry = self._clients.get(loop)
        if entry is None:
            client = self._factory()
            guard = self._guard(client)
            # First iteration registers the guard with the running loop; the body reaches its
            # ``yield`` without awaiting, so this finishes synchronously.
            with contextlib.suppress(StopIteration):
                guard.__anext__().send(None)
            entry = self._clients[loop] = (client, guard)
        return entry[0]

    async def aclose(self) -> None:
        """Close the running loop's client now, and any others that can be closed."""
        entry = self._clients.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[1].aclose()
        self.close()

    def close(self) -> None:
        """Close clients from outside their loops (best effort for loops still running)."""
        for loop, (_, guard) in list(self._clients.items()):
            del self._clients[loop]
            if loop.is_closed():
                continue  # asyncio.run closed the client on shutdown
            if loop.is_running():  # possibly in another thread: schedule, do not wait
                asyncio.run_coroutine_threadsafe(_finish(guard), loop)
            else:
                loop.run_until_complete(_finish(guard))


async def _finish(guard: AsyncGenerator[None, None]) -> None:
    await guard.aclose()
