"""Shared provider helpers: backoff with full jitter, retry loops, per-loop async clients."""

from __future__ import annotations

import asyncio

import pytest

from matcha.models.retry import Backoff, PerLoop, aretry, retry, retry_after_seconds, schema_instruction

pytestmark = pytest.mark.unit


def test_full_jitter_bounds() -> None:
    backoff = Backoff(max_retries=5, base_delay=0.5, max_delay=3.0)
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 3.0), (8, 3.0)]:
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert min(delays) >= 0.0 and max(delays) <= ceiling
        assert max(delays) - min(delays) > ceiling / 4  # jittered, not fixed
    assert backoff.delay(0, at_least=2.5) >= 2.5  # Retry-After raises the floor...
    assert backoff.delay(0, at_least=99) <= 3.0  # ...up to the cap


def test_retry_stops_on_success_and_on_non_retryable() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("down")
        return "ok"

    def should_retry(exc: BaseException) -> float | None:
        return 0.0 if isinstance(exc, ConnectionError) else None

    assert retry(flaky, should_retry, Backoff(5, 0.0)) == "ok" and len(calls) == 3

    def bad() -> str:
        calls.append(1)
        raise ValueError("no")

    calls.clear()
    with pytest.raises(ValueError):
        retry(bad, should_retry, Backoff(5, 0.0))
    assert len(calls) == 1


def test_aretry_gives_up_after_max_retries() -> None:
    calls: list[int] = []

    async def down() -> None:
        calls.append(1)
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        asyncio.run(aretry(down, lambda exc: 0.0, Backoff(2, 0.0)))
    assert len(calls) == 3


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) == 0.0
    assert retry_after_seconds("Wed, 21 Oct 2026 07:28:00 GMT") == 0.0


def test_schema_instruction_states_the_schema() -> None:
    text = schema_instruction({"type": "object", "properties": {"label": {"enum": ["é"]}}})
    assert '{"type":"object","properties":{"label":{"enum":["é"]}}}' in text


class FakeClient:
    def __init__(self) -> None:
        self.closed = False

    async def close(self) -> None:
        await asyncio.sleep(0)
        self.closed = True


def make_clients() -> tuple[PerLoop[FakeClient], list[FakeClient]]:
    made: list[FakeClient] = []

    def factory() -> FakeClient:
        made.append(FakeClient())
        return made[-1]

    return PerLoop(factory, lambda c: c.close()), made


def test_per_loop_clients_close_when_asyncio_run_ends() -> None:
    clients, made = make_clients()

    async def use() -> FakeClient:
        first = clients.get()
        assert clients.get() is first  # one client per loop
        return first

    a = asyncio.run(use())
    b = asyncio.run(use())
    assert a is not b
    assert a.closed and b.closed and len(made) == 2


def test_per_loop_aclose_and_close() -> None:
    clients, made = make_clients()

    async def use_and_close() -> None:
        clients.get()
        await clients.aclose()
        assert made[0].closed

    asyncio.run(use_and_close())

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(asyncio.sleep(0, result=None))

        async def use() -> None:
            clients.get()

        loop.run_until_complete(use())
        assert not made[1].closed
        clients.close()  # outside the loop, which is still open
        assert made[1].closed
    finally:
        loop.close()
