"""One model on several replicas: requests spread over them within each one's bound, and a replica
that is down (connection refused) costs no failed request. Real HTTP servers speaking the OpenAI API
on loopback."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest
from support import OpenAIStub

from matcha.models.openai_provider import OpenAICompatProvider

pytestmark = pytest.mark.integration


class Replica:
    """Counts the requests in flight at once, and how many it served."""

    def __init__(self, delay: float = 0.05):
        self.delay, self.now, self.peak, self.served = delay, 0, 0, 0
        self._lock = threading.Lock()

    def __call__(self, prompt: str) -> str:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        time.sleep(self.delay)
        with self._lock:
            self.now -= 1
            self.served += 1
        return "answer to " + prompt


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def provider(*endpoints: tuple[str, int], **kw: object) -> OpenAICompatProvider:
    cfg = OpenAICompatProvider.Config.model_validate({
        "provider": "openai", "model": "m", "max_retries": 2, "retry_backoff": 0.01,
        "endpoints": [{"url": url, "max_concurrency": n} for url, n in endpoints], **kw})
    return OpenAICompatProvider("llm", cfg)


async def many(p: OpenAICompatProvider, n: int) -> list[str]:
    return await asyncio.gather(*(p.agenerate(f"p{i}") for i in range(n)))


def test_requests_spread_over_replicas_within_each_bound() -> None:
    a, b = Replica(), Replica()
    with OpenAIStub(a) as sa, OpenAIStub(b) as sb:
        p = provider((sa.url, 2), (sb.url, 3))
        answers = asyncio.run(many(p, 30))
        assert answers == [f"answer to p{i}" for i in range(30)]
        assert a.served + b.served == 30 and a.served > 0 and b.served > 0
        assert a.peak <= 2 and b.peak <= 3 and a.peak + b.peak >= 4  # both busy at once, neither past its bound


def test_a_replica_down_costs_no_failed_request() -> None:
    b = Replica(delay=0.0)
    with OpenAIStub(b) as sb:
        down = f"http://127.0.0.1:{closed_port()}/v1"
        p = provider((down, 4), (sb.url, 4), failover_seconds=60)
        assert asyncio.run(many(p, 8)) == [f"answer to p{i}" for i in range(8)]
        assert b.served == 8
        dead = next(e for e in p._pool.endpoints if e.url == down)
        assert dead.failures >= 1 and dead.down_until > time.monotonic()  # set aside, not retried for every call
        p.load()  # /models: answered by the live replica
        p.close()


def test_endpoints_and_base_url_are_exclusive() -> None:
    with pytest.raises(ValueError, match="give `base_url`"):
        OpenAICompatProvider.Config.model_validate({"provider": "openai", "model": "m"})
    with pytest.raises(ValueError, match="not both"):
        OpenAICompatProvider.Config.model_validate({"provider": "openai", "model": "m", "base_url": "http://a/v1",
                                                    "endpoints": [{"url": "http://b/v1"}]})
    one = OpenAICompatProvider("x", OpenAICompatProvider.Config.model_validate(
        {"provider": "openai", "model": "m", "base_url": "http://a/v1"}))
    two = OpenAICompatProvider("x", OpenAICompatProvider.Config.model_validate(
        {"provider": "openai", "model": "m", "endpoints": [{"url": "http://a/v1"}, {"url": "http://b/v1"}]}))
    assert one.fingerprint == two.fingerprint  # a replica more does not void the cache
