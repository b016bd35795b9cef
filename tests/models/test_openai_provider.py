"""The OpenAI-compatible provider: mocked HTTP for error handling, a REAL llama_cpp.server for the
happy paths (completion, chat, JSON schema)."""

# Fixtures come from model_fixtures (see there why not conftest): arguments re-use their names.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from model_fixtures import gemma_path, sentiment_schema  # noqa: F401
from pytest_httpx import HTTPXMock

from matcha.errors import ModelError, ModelUnavailable
from matcha.models.base import PROVIDERS
from matcha.models.check import check_models
from matcha.models.openai_provider import OpenAICompatConfig, OpenAICompatProvider
from matcha.secrets import mask

BASE = "http://model-server.internal:8000/v1"


def make(**overrides: Any) -> OpenAICompatProvider:
    settings: dict[str, Any] = {"base_url": BASE, "model": "m", "retry_backoff": 0.0, **overrides}
    return OpenAICompatProvider("llm", OpenAICompatConfig(**settings))


def generate(provider: OpenAICompatProvider, prompt: str = "Hi", **kwargs: Any) -> str:
    async def go() -> str:
        try:
            return await provider.agenerate(prompt, **kwargs)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def chat_answer(text: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}


# --- unit: mocked HTTP -------------------------------------------------------------------------


@pytest.mark.unit
def test_registered() -> None:
    assert PROVIDERS.get("openai") is OpenAICompatProvider


@pytest.mark.unit
def test_chat_request_shape(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{BASE}/chat/completions", json=chat_answer("hello"))
    assert generate(make(), "Hi", system="Be brief", max_tokens=5, temperature=0.3) == "hello"
    body = json.loads(httpx_mock.get_requests()[0].content)
    assert body == {
        "model": "m",
        "max_tokens": 5,
        "temperature": 0.3,
        "messages": [{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Hi"}],
    }


@pytest.mark.unit
def test_stop_strings_are_sent(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{BASE}/chat/completions", json=chat_answer("hello"))
    generate(make(), "Hi", stop=["\n"])
    assert json.loads(httpx_mock.get_requests()[0].content)["stop"] == ["\n"]


@pytest.mark.unit
def test_completion_mode(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{BASE}/completions", json={"choices": [{"text": " Paris."}]})
    assert generate(make(mode="completion"), "The capital of France is") == " Paris."
    body = json.loads(httpx_mock.get_requests()[0].content)
    assert body["prompt"] == "The capital of France is"


@pytest.mark.unit
def test_json_schema_request(httpx_mock: HTTPXMock, sentiment_schema: dict[str, Any]) -> None:
    httpx_mock.add_response(url=f"{BASE}/chat/completions", json=chat_answer('{"label": "positive"}'))
    provider = make(json_mode="json_schema")
    assert json.loads(generate(provider, "Great!", schema=sentiment_schema)) == {"label": "positive"}
    body = json.loads(httpx_mock.get_requests()[0].content)
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": sentiment_schema},
    }
    assert json.dumps(sentiment_schema, separators=(",", ":")) in body["messages"][-1]["content"]


@pytest.mark.unit
@pytest.mark.parametrize("status", [400, 422])
def test_auto_falls_back_to_json_object(httpx_mock: HTTPXMock, sentiment_schema: dict[str, Any], status: int) -> None:
    httpx_mock.add_response(url=f"{BASE}/chat/completions", status_code=status, json={"error": "bad"})
    httpx_mock.add_response(url=f"{BASE}/chat/completions", json=chat_answer('{"label": "negative"}'))
    httpx_mock.add_response(url=f"{BASE}/chat/completions", json=chat_answer('{"label": "positive"}'))
    provider = make()
    assert generate(provider, "Awful", schema=sentiment_schema) == '{"label": "negative"}'
    assert provider.json_mode == "json_object"
    generate(provider, "Nice", schema=sentiment_schema)  # no second probe
    formats = [json.loads(r.content)["response_format"]["type"] for r in httpx_mock.get_requests()]
    assert formats == ["json_schema", "json_object", "json_object"]


@pytest.mark.unit
def test_retries_503_then_succeeds(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{BASE}/chat/completions", status_code=503, headers={"Retry-After": "0"})
    httpx_mock.add_response(url=f"{BASE}/chat/completions", status_code=429)
    httpx_mock.add_exception(httpx.ReadTimeout("slow"), url=f"{BASE}/chat/completions")
    httpx_mock.add_response(url=f"{BASE}/chat/completions", json=chat_answer("ok"))
    assert generate(make()) == "ok"
    assert len(httpx_mock.get_requests()) == 4


@pytest.mark.unit
def test_gives_up_after_max_retries(httpx_mock: HTTPXMock) -> None:
    for _ in range(3):
        httpx_mock.add_response(url=f"{BASE}/chat/completions", status_code=503, text="queue full")
    with pytest.raises(ModelError, match="HTTP 503: queue full"):
        generate(make(max_retries=2))
    assert len(httpx_mock.get_requests()) == 3


@pytest.mark.unit
def test_other_4xx_not_retried(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{BASE}/chat/completions", status_code=400, text="context too long")
    with pytest.raises(ModelError, match="context too long"):
        generate(make())
    assert len(httpx_mock.get_requests()) == 1


@pytest.mark.unit
def test_404_is_unavailable(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{BASE}/chat/completions", status_code=404, text="no such model")
    with pytest.raises(ModelUnavailable) as info:
        generate(make())
    assert "base_url" in info.value.hint


@pytest.mark.unit
def test_api_key_from_env_is_sent_and_masked(httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_LLM_KEY", "sk-very-secret-key")
    httpx_mock.add_response(url=f"{BASE}/chat/completions", status_code=401, text="bad key sk-very-secret-key")
    with pytest.raises(ModelUnavailable) as info:
        generate(make(api_key_env="TEST_LLM_KEY"))
    assert httpx_mock.get_requests()[0].headers["Authorization"] == "Bearer sk-very-secret-key"
    assert "sk-very-secret-key" not in str(info.value)
    assert mask("sk-very-secret-key") == "***"
    assert "TEST_LLM_KEY" in info.value.hint


@pytest.mark.unit
def test_missing_api_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_LLM_KEY_UNSET", raising=False)
    with pytest.raises(ModelUnavailable, match=r"\$TEST_LLM_KEY_UNSET, which is not set"):
        make(api_key_env="TEST_LLM_KEY_UNSET").load()


@pytest.mark.unit
def test_connection_refused_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens there
    provider = make(base_url=f"http://127.0.0.1:{port}/v1", max_retries=1)
    with pytest.raises(ModelUnavailable) as info:
        provider.load()
    provider.close()
    assert info.value.hint == "start the model server or fix base_url"


@pytest.mark.unit
def test_embeddings_are_batched_sorted_and_normalised(httpx_mock: HTTPXMock) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        texts = json.loads(request.content)["input"]
        rows = [{"index": i, "embedding": [float(len(t)), 0.0, 0.0]} for i, t in enumerate(texts)]
        return httpx.Response(200, json={"data": list(reversed(rows))})

    httpx_mock.add_callback(answer, url=f"{BASE}/embeddings", is_reusable=True)
    provider = make(embed_batch_size=2)
    vectors = provider.embed(["a", "bb", "ccc", "dddd", "eeeee"])
    provider.close()
    assert vectors.shape == (5, 3) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors[:, 0], 1.0)
    assert [len(json.loads(r.content)["input"]) for r in httpx_mock.get_requests()] == [2, 2, 1]


# --- integration: a real llama_cpp.server ------------------------------------------------------


@pytest.fixture(scope="module")
def server(gemma_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python[server] not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gemma_path)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048"]
    log = tmp_path_factory.mktemp("llama_server") / "server.log"
    base = f"http://127.0.0.1:{port}/v1"
    # The log goes to a file: llama.cpp writes enough to fill (and block on) a pipe.
    with log.open("wb") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited:\n{log.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not answer within 90 s:\n{log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def real(base: str, **overrides: Any) -> OpenAICompatProvider:
    settings: dict[str, Any] = {"base_url": base, "model": "gemma", "max_tokens": 16, **overrides}
    return OpenAICompatProvider("llm", OpenAICompatConfig(**settings))


@pytest.mark.integration
@pytest.mark.slow
def test_real_load_and_completion(server: str) -> None:
    provider = real(server, mode="completion")
    provider.load()
    text = generate(provider, "The capital of France is")
    provider.close()
    assert text.strip()


@pytest.mark.integration
@pytest.mark.slow
def test_real_chat(server: str) -> None:
    # Gemma 270M is a base model: chat answers may be empty, but the API round trip must work.
    assert isinstance(generate(real(server), "Say hello."), str)


@pytest.mark.integration
@pytest.mark.slow
def test_real_chat_json_schema_auto(server: str, sentiment_schema: dict[str, Any]) -> None:
    provider = real(server, max_tokens=32)
    text = generate(provider, "Review: I love it!\nSentiment?", schema=sentiment_schema)
    assert json.loads(text)["label"] in {"positive", "negative"}
    assert provider.json_mode == "json_object"  # llama_cpp.server rejects the json_schema form


@pytest.mark.integration
@pytest.mark.slow
def test_real_server_rejects_json_schema_form(server: str, sentiment_schema: dict[str, Any]) -> None:
    with pytest.raises(ModelError, match="response_format"):
        generate(real(server, json_mode="json_schema"), "Hi", schema=sentiment_schema)


@pytest.mark.integration
@pytest.mark.slow
def test_real_completion_with_grammar(server: str, sentiment_schema: dict[str, Any]) -> None:
    provider = real(server, mode="completion", json_mode="grammar", max_tokens=32)
    text = generate(provider, "Review: Terrible, it broke.\nSentiment of the review:", schema=sentiment_schema)
    assert json.loads(text)["label"] in {"positive", "negative"}


@pytest.mark.integration
@pytest.mark.slow
def test_real_check_models(server: str) -> None:
    [row] = check_models({"llm": real(server, mode="completion")})
    assert row.ok, row.error
    assert row.provider == "openai" and row.load_seconds is not None and row.call_seconds is not None
