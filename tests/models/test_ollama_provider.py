"""The Ollama provider against its documented HTTP API (mocked with pytest-httpx), plus an opt-in
live test: ``MATCHA_OLLAMA_URL=http://host:11434 MATCHA_OLLAMA_MODEL=llama3.2 pytest -m live``."""

# Fixtures come from model_fixtures (see there why not conftest): arguments re-use their names.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import httpx
import numpy as np
import pytest
from model_fixtures import sentiment_schema  # noqa: F401
from pytest_httpx import HTTPXMock

from matcha.errors import ModelError, ModelUnavailable
from matcha.models.base import PROVIDERS
from matcha.models.check import check_models
from matcha.models.ollama_provider import OllamaConfig, OllamaProvider

HOST = "http://127.0.0.1:11434"
CHAT = f"{HOST}/api/chat"


def make(**overrides: Any) -> OllamaProvider:
    settings: dict[str, Any] = {"model": "llama3.2", "retry_backoff": 0.0, **overrides}
    return OllamaProvider("llm", OllamaConfig(**settings))


def generate(provider: OllamaProvider, prompt: str = "Hi", **kwargs: Any) -> str:
    async def go() -> str:
        try:
            return await provider.agenerate(prompt, **kwargs)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def chat_answer(text: str) -> dict[str, Any]:
    return {
        "model": "llama3.2",
        "created_at": "2026-11-23T00:00:00Z",
        "message": {"role": "assistant", "content": text},
        "done": True,
    }


def sent(httpx_mock: HTTPXMock, index: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(httpx_mock.get_requests()[index].content)
    return body


@pytest.mark.unit
def test_registered() -> None:
    assert PROVIDERS.get("ollama") is OllamaProvider
    assert OllamaProvider.capabilities == frozenset({"embed", "generate"})


@pytest.mark.unit
def test_chat_request(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=CHAT, json=chat_answer("Bonjour"))
    provider = make(options={"num_ctx": 4096, "temperature": 0.7})
    assert generate(provider, "Say hi", system="Be brief", max_tokens=8, temperature=0.1) == "Bonjour"
    body = sent(httpx_mock)
    assert body["model"] == "llama3.2"
    assert body["messages"] == [{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Say hi"}]
    assert body["options"] == {"num_ctx": 4096, "temperature": 0.1, "num_predict": 8}
    assert body["keep_alive"] == "30m"
    assert body["stream"] is False
    assert "format" not in body


@pytest.mark.unit
def test_stop_strings_go_to_options(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=CHAT, json=chat_answer("Bonjour"))
    generate(make(), "Say hi", stop=["\n"])
    assert sent(httpx_mock)["options"]["stop"] == ["\n"]


@pytest.mark.unit
def test_generate_mode(httpx_mock: HTTPXMock) -> None:
    answer = {"model": "llama3.2", "created_at": "2026-11-23T00:00:00Z", "response": " Paris", "done": True}
    httpx_mock.add_response(url=f"{HOST}/api/generate", json=answer)
    assert generate(make(mode="generate", keep_alive="1h"), "Capital of France:", system="Terse") == " Paris"
    body = sent(httpx_mock)
    assert (body["prompt"], body["system"], body["keep_alive"]) == ("Capital of France:", "Terse", "1h")


@pytest.mark.unit
def test_schema_goes_to_format_and_prompt(httpx_mock: HTTPXMock, sentiment_schema: dict[str, Any]) -> None:
    httpx_mock.add_response(url=CHAT, json=chat_answer('{"label": "positive"}'))
    assert json.loads(generate(make(), "I love it", schema=sentiment_schema)) == {"label": "positive"}
    body = sent(httpx_mock)
    assert body["format"] == sentiment_schema
    prompt = body["messages"][-1]["content"]
    assert prompt.startswith("I love it") and json.dumps(sentiment_schema, separators=(",", ":")) in prompt


@pytest.mark.unit
def test_malformed_json_is_returned_raw(httpx_mock: HTTPXMock, sentiment_schema: dict[str, Any]) -> None:
    httpx_mock.add_response(url=CHAT, json=chat_answer('{"label": positive'))
    text = generate(make(), "I love it", schema=sentiment_schema)
    assert text == '{"label": positive'  # validating is the caller's job
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


@pytest.mark.unit
def test_503_then_success(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=CHAT, status_code=503, json={"error": "server busy, please try again"})
    httpx_mock.add_response(url=CHAT, status_code=429, json={"error": "too many requests"})
    httpx_mock.add_exception(httpx.ReadTimeout("timed out"), url=CHAT)
    httpx_mock.add_response(url=CHAT, json=chat_answer("ok"))
    assert generate(make()) == "ok"
    assert len(httpx_mock.get_requests()) == 4


@pytest.mark.unit
def test_503_until_retries_run_out(httpx_mock: HTTPXMock) -> None:
    for _ in range(3):
        httpx_mock.add_response(url=CHAT, status_code=503, json={"error": "server busy"})
    with pytest.raises(ModelError, match="HTTP 503: server busy"):
        generate(make(max_retries=2))
    assert len(httpx_mock.get_requests()) == 3


@pytest.mark.unit
def test_timeouts_until_retries_run_out(httpx_mock: HTTPXMock) -> None:
    for _ in range(2):
        httpx_mock.add_exception(httpx.ReadTimeout("timed out"), url=CHAT)
    with pytest.raises(ModelError, match="timed out after 5s"):
        generate(make(max_retries=1, timeout=5))


@pytest.mark.unit
def test_400_not_retried(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=CHAT, status_code=400, json={"error": "invalid options"})
    with pytest.raises(ModelError, match="HTTP 400: invalid options"):
        generate(make())
    assert len(httpx_mock.get_requests()) == 1


@pytest.mark.unit
def test_model_not_found(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=CHAT, status_code=404, json={"error": 'model "llama3.2" not found, try pulling it first'}
    )
    with pytest.raises(ModelUnavailable, match=r"no model 'llama3\.2'") as info:
        generate(make())
    assert info.value.hint == "ollama pull llama3.2"
    assert len(httpx_mock.get_requests()) == 1


@pytest.mark.unit
def test_connection_refused(httpx_mock: HTTPXMock) -> None:
    for _ in range(2):
        httpx_mock.add_exception(httpx.ConnectError("Connection refused"), url=CHAT)
    with pytest.raises(ModelUnavailable, match="Cannot connect to Ollama") as info:
        generate(make(max_retries=1))
    assert info.value.hint == "start Ollama (`ollama serve`) or fix host"


@pytest.mark.unit
def test_load_checks_the_model(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{HOST}/api/show", status_code=404, json={"error": "model 'llama3.2' not found"})
    provider = make()
    with pytest.raises(ModelUnavailable) as info:
        provider.load()
    provider.close()
    assert info.value.hint == "ollama pull llama3.2"
    assert sent(httpx_mock) == {"model": "llama3.2"}


@pytest.mark.unit
def test_embed_batches(httpx_mock: HTTPXMock) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        texts = json.loads(request.content)["input"]
        vectors = [[3.0 * len(t), 4.0 * len(t)] for t in texts]
        return httpx.Response(200, json={"model": "nomic-embed-text", "embeddings": vectors})

    httpx_mock.add_callback(answer, url=f"{HOST}/api/embed", is_reusable=True)
    provider = make(model="nomic-embed-text", embed_batch_size=2)
    vectors = provider.embed(["a", "bb", "ccc", "dddd", "eeeee"])
    provider.close()
    assert vectors.shape == (5, 2) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, [[0.6, 0.8]] * 5, rtol=1e-6)
    bodies = [json.loads(r.content) for r in httpx_mock.get_requests()]
    assert [b["input"] for b in bodies] == [["a", "bb"], ["ccc", "dddd"], ["eeeee"]]
    assert {b["keep_alive"] for b in bodies} == {"30m"}


@pytest.mark.unit
def test_embed_retries_503(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{HOST}/api/embed", status_code=503, json={"error": "busy"})
    httpx_mock.add_response(url=f"{HOST}/api/embed", json={"model": "m", "embeddings": [[1.0, 0.0]]})
    provider = make()
    assert provider.embed(["x"]).shape == (1, 2)
    provider.close()


@pytest.mark.unit
def test_usable_from_successive_event_loops(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=CHAT, json=chat_answer("one"))
    httpx_mock.add_response(url=CHAT, json=chat_answer("two"))
    provider = make()
    clients: list[Any] = []

    async def go(prompt: str) -> str:
        text = await provider.agenerate(prompt)
        clients.append(next(iter(provider._async.get().values())))  # the client of the one replica
        return text

    assert asyncio.run(go("a")) == "one"
    assert asyncio.run(go("b")) == "two"  # a new loop gets its own client...
    assert clients[0] is not clients[1]
    assert all(c._client.is_closed for c in clients)  # ...closed when asyncio.run ends
    provider.close()


@pytest.mark.unit
def test_check_reports_a_down_server(httpx_mock: HTTPXMock) -> None:
    for _ in range(2):
        httpx_mock.add_exception(httpx.ConnectError("Connection refused"), url=f"{HOST}/api/show")
    [row] = check_models({"writer": make(max_retries=1)})
    assert not row.ok and row.provider == "ollama" and row.model == "llama3.2"
    assert row.error.startswith("Cannot connect to Ollama at http://127.0.0.1:11434")
    assert row.hint == "start Ollama (`ollama serve`) or fix host"


@pytest.mark.live
@pytest.mark.skipif(not os.environ.get("MATCHA_OLLAMA_URL"), reason="set MATCHA_OLLAMA_URL (and MATCHA_OLLAMA_MODEL)")
def test_live_ollama(sentiment_schema: dict[str, Any]) -> None:
    provider = OllamaProvider(
        "live",
        OllamaConfig(
            model=os.environ.get("MATCHA_OLLAMA_MODEL", "llama3.2"),
            host=os.environ["MATCHA_OLLAMA_URL"],
            options={"temperature": 0},
            keep_alive="5m",
        ),
    )
    provider.load()
    assert generate(provider, "Say hello in one word.", max_tokens=8).strip()
    text = generate(provider, "Review: I love it!\nClassify the sentiment.", schema=sentiment_schema, max_tokens=32)
    assert json.loads(text)["label"] in {"positive", "negative"}
    [row] = check_models({"live": provider})
    assert row.ok, row.error
    provider.close()


@pytest.mark.unit
def test_a_replica_with_a_full_queue_is_passed_over(httpx_mock: HTTPXMock) -> None:
    a, b = "http://gpu-1:11434", "http://gpu-2:11434"
    provider = make(endpoints=[{"url": a, "max_concurrency": 1}, {"url": b, "max_concurrency": 1}],
                    failover_seconds=60)
    httpx_mock.add_response(url=f"{a}/api/chat", status_code=503, json={"error": "server busy"},
                            is_optional=True, is_reusable=True)
    httpx_mock.add_response(url=f"{b}/api/chat", json=chat_answer("from b"), is_reusable=True)
    assert [generate(provider) for _ in range(3)] == ["from b"] * 3  # none failed: the busy replica was passed over
    hits_a = [r for r in httpx_mock.get_requests() if r.url.host == "gpu-1"]
    assert len(hits_a) <= 1  # once found busy, it is set aside (failover_seconds), not asked again each time
    assert provider._pool.endpoints[0].down_until > 0 or not hits_a
    assert OllamaProvider("x", OllamaConfig(model="m", endpoints=[{"url": a}, {"url": b}])).fingerprint == \
        OllamaProvider("x", OllamaConfig(model="m", host=a)).fingerprint  # replicas do not void the cache
    provider.close()
