"""Any OpenAI-compatible server (vLLM, llama.cpp server, LM Studio, Ollama's ``/v1``) over httpx.

Endpoints: ``/chat/completions`` (``mode: chat``), ``/completions`` (``mode: completion``, for
base models) and ``/embeddings``, relative to ``base_url`` (which normally ends in ``/v1``).
Model servers are configured by the operator and usually sit on the private network, so no
egress address filtering applies here.

Structured output, ``json_mode``:

``json_schema``
    ``response_format={"type": "json_schema", "json_schema": {"name": "output", "schema": S}}``,
    the OpenAI form: vLLM, LM Studio, Ollama and llama.cpp's C++ ``llama-server`` accept it.
    vLLM also honours it on ``/completions``.
``json_object``
    ``response_format={"type": "json_object", "schema": S}``, the form llama-cpp-python's
    ``llama_cpp.server`` accepts on ``/chat/completions`` (it rejects ``json_schema``, answering
    HTTP 500 with a validation message about ``response_format``).
``grammar``
    a GBNF grammar converted from the schema (needs ``llama-cpp-python`` installed locally),
    sent as ``grammar``: the only way to constrain ``/completions`` on ``llama_cpp.server``.
``auto`` (default)
    ``json_schema`` first; if the server rejects it (400, 422, or a 500 naming
    ``response_format``), ``json_object`` from then on. That works in chat mode on vLLM and
    both llama.cpp servers. In completion mode it sends ``json_schema``, which
    ``llama_cpp.server`` silently ignores on ``/completions``: use ``grammar`` there.

The schema is also stated in the prompt, and the raw text is returned for the caller to validate.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import httpx
import numpy as np
from pydantic import Field, model_validator

from matcha.errors import ModelError, ModelUnavailable
from matcha.models.base import PROVIDERS, Embedder, Generator, ProviderConfig
from matcha.models.endpoints import FAILOVER_STATUS, Endpoint, EndpointConfig, Pool, afailover, failover
from matcha.models.retry import (
    RETRY_STATUS,
    Backoff,
    PerLoop,
    RetryDecision,
    aretry,
    retry,
    retry_after_seconds,
    schema_instruction,
)
from matcha.secrets import env_secret, mask

JsonMode = Literal["auto", "json_schema", "json_object", "grammar"]


class OpenAICompatConfig(ProviderConfig):
    provider: Literal["openai"] = "openai"
    base_url: str | None = Field(None, description="server URL ending in /v1, e.g. http://gpu-1:8000/v1 (or "
                                 "`endpoints` for several replicas)")
    endpoints: list[EndpointConfig] = Field(default_factory=list, description="replicas serving the same model: "
                                            "[{url, max_concurrency}]; requests spread over them, with failover")
    failover_seconds: float = Field(30.0, ge=0, le=3600, description="how long a failing replica is set aside")
    model: str = Field(description="model name served by the server")
    api_key_env: str | None = Field(
        None, description="name of the environment variable holding the API key (never the key itself)"
    )
    mode: Literal["chat", "completion"] = Field(
        "chat", description="chat (/chat/completions) or completion (/completions)"
    )
    json_mode: JsonMode = Field(
        "auto", description="how JSON schemas are sent: auto, json_schema, json_object or grammar"
    )
    max_tokens: int = Field(512, ge=1, description="default upper bound on generated tokens")
    temperature: float = Field(0.0, ge=0, description="default sampling temperature")
    timeout: float = Field(120.0, gt=0, description="seconds per request")
    max_retries: int = Field(5, ge=0, description="retries of 408/429/502/503/504, timeouts and connection errors")
    retry_backoff: float = Field(0.5, ge=0, description="first retry delay bound in seconds (exponential, full jitter)")
    embed_batch_size: int = Field(64, ge=1, description="texts per /embeddings call")

    @model_validator(mode="after")
    def _somewhere(self) -> OpenAICompatConfig:
        if (self.base_url is None) == (not self.endpoints):
            raise ValueError("give `base_url` (one server) or `endpoints` (replicas of the model), not both")
        return self

    def replicas(self) -> list[tuple[str, int]]:
        if self.endpoints:
            return [(e.url, e.max_concurrency) for e in self.endpoints]
        return [(str(self.base_url), 1024)]


class _StatusError(Exception):
    def __init__(self, status: int, text: str, retry_after: float):
        super().__init__(f"HTTP {status}")
        self.status, self.text, self.retry_after = status, text, retry_after


def _should_retry(exc: BaseException) -> RetryDecision:
    if isinstance(exc, _StatusError):
        return exc.retry_after if exc.status in RETRY_STATUS else None
    return 0.0 if isinstance(exc, httpx.TransportError) else None


def _replica_fault(exc: Exception) -> bool:
    """A failure of the replica (try another one), not of the request."""
    return isinstance(exc, httpx.TransportError) or (isinstance(exc, _StatusError) and exc.status in FAILOVER_STATUS)


def _check(resp: httpx.Response) -> Any:
    if resp.status_code >= 400:
        raise _StatusError(resp.status_code, resp.text[:500], retry_after_seconds(resp.headers.get("retry-after")))
    return resp.json()


def _gbnf(schema: dict[str, Any]) -> str:
    try:
        from llama_cpp.llama_grammar import json_schema_to_gbnf
    except ImportError as exc:
        raise ModelUnavailable(
            "json_mode 'grammar' converts the schema with llama-cpp-python, which is not installed",
            "pip install 'matcha[local]', or use json_mode 'json_schema' / 'json_object'",
        ) from exc
    return str(json_schema_to_gbnf(json.dumps(schema)))


@PROVIDERS.register("openai")
class OpenAICompatProvider(Embedder, Generator):
    """A model behind an OpenAI-compatible HTTP API, for generation and embeddings."""

    Config = OpenAICompatConfig
    capabilities = frozenset({"embed", "generate"})
    config: OpenAICompatConfig
    fingerprint_exclude: ClassVar[set[str]] = {
        *Generator.fingerprint_exclude,
        "timeout",
        "max_retries",
        "retry_backoff",
        "embed_batch_size",
        "json_mode",
        "endpoints",  # replicas of one model: adding one must not make cached answers unusable
        "failover_seconds",
    }

    def __init__(self, name: str, config: OpenAICompatConfig):
        super().__init__(name, config)
        self._backoff = Backoff(config.max_retries, config.retry_backoff)
        self._pool = Pool(config.replicas(), config.failover_seconds)
        self._base = self._pool.describe()
        self._lock = threading.Lock()
        self._sync: httpx.Client | None = None
        self._async: PerLoop[httpx.AsyncClient] = PerLoop(self._new_async, lambda c: c.aclose())
        #: the json_mode in use; ``auto`` settles on the first structured call
        self.json_mode: JsonMode = config.json_mode

    def _headers(self) -> dict[str, str]:
        name = self.config.api_key_env
        if not name:
            return {}
        key = env_secret(name)
        if not key:
            raise ModelUnavailable(
                f"Model '{self.name}' reads its API key from ${name}, which is not set",
                f"export {name}=<key>, or remove api_key_env if the server needs no key",
            )
        return {"Authorization": f"Bearer {key}"}

    def _new_async(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(headers=self._headers(), timeout=self.config.timeout)

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._sync is None:
                self._sync = httpx.Client(headers=self._headers(), timeout=self.config.timeout)
            return self._sync

    def _sync_call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One request on the best replica, failing over to the others (see :mod:`matcha.models.endpoints`)."""
        client = self._client()
        return failover(self._pool, lambda ep: _check(client.request(method, ep.url + path, json=body)), _replica_fault)

    def _translate(self, exc: Exception, what: str) -> ModelError:
        where = mask(self._base)
        if isinstance(exc, _StatusError):
            detail = mask(exc.text.strip())
            if exc.status in (401, 403):
                return ModelUnavailable(
                    f"{where} refused the credentials (HTTP {exc.status}): {detail}",
                    f"check the key in ${self.config.api_key_env}"
                    if self.config.api_key_env
                    else "the server wants an API key: set api_key_env to the name of the env var holding it",
                )
            if exc.status == 404:
                return ModelUnavailable(
                    f"{where} answered 404 for {what} ({detail})",
                    f"check base_url (it usually ends in /v1) and the model name '{self.config.model}'",
                )
            return ModelError(f"{what} at {where} failed with HTTP {exc.status}: {detail}")
        if isinstance(exc, httpx.ConnectError):
            return ModelUnavailable(f"Cannot connect to {where}", "start the model server or fix base_url")
        if isinstance(exc, httpx.TimeoutException):
            return ModelError(f"{what} at {where} timed out after {self.config.timeout:g}s; raise 'timeout'")
        return ModelError(f"{what} at {where} failed: {mask(str(exc)) or type(exc).__name__}")

    def load(self) -> None:
        """Check that the server answers and accepts the credentials (``GET /models``)."""
        self._client()  # a missing API key is said as such, before any request
        try:
            retry(lambda: self._sync_call("GET", "/models"), _should_retry, self._backoff)
        except Exception as exc:
            raise self._translate(exc, "listing models") from exc

    def _body(self, prompt: str, system: str | None, max_tokens: int | None, temperature: float | None) -> dict:
        body: dict[str, Any] = {
            "model": self.config.model,
            "max_tokens": max_tokens if max_tokens is not None else self.config.max_tokens,
            "temperature": temperature if temperature is not None else self.config.temperature,
        }
        if self.config.mode == "chat":
            messages = [{"role": "system", "content": system}] if system else []
            body["messages"] = [*messages, {"role": "user", "content": prompt}]
        else:
            body["prompt"] = f"{system}\n\n{prompt}" if system else prompt
        return body

    @staticmethod
    def _constrain(body: dict[str, Any], schema: dict[str, Any], mode: JsonMode) -> dict[str, Any]:
        if mode == "grammar":
            return {**body, "grammar": _gbnf(schema)}
        if mode == "json_object":
            return {**body, "response_format": {"type": "json_object", "schema": schema}}
        fmt = {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
        return {**body, "response_format": fmt}

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        client = self._async.get()

        async def call() -> Any:
            async def attempt(ep: Endpoint) -> Any:
                return _check(await client.post(ep.url + path, json=body))

            return await afailover(self._pool, attempt, _replica_fault)

        return await aretry(call, _should_retry, self._backoff)

    async def agenerate(
        self,
        prompt: str,
        *,
        system: str | None = None,
        schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: list[str] | None = None,
    ) -> str:
        chat = self.config.mode == "chat"
        path = "/chat/completions" if chat else "/completions"
        if schema is not None:
            prompt += schema_instruction(schema)
        body = self._body(prompt, system, max_tokens, temperature)
        if stop:
            body["stop"] = stop
        try:
            if schema is None:
                data = await self._post(path, body)
            elif self.json_mode == "auto":
                data = await self._post_auto(path, body, schema)
            else:
                data = await self._post(path, self._constrain(body, schema, self.json_mode))
            choice = data["choices"][0]
            text = choice["message"].get("content") if chat else choice.get("text")
        except ModelError:
            raise
        except (KeyError, IndexError, TypeError) as exc:
            raise ModelError(f"Unexpected answer from {mask(self._base)}{path}: {exc!r}") from exc
        except Exception as exc:
            raise self._translate(exc, "generation") from exc
        return str(text or "")

    async def _post_auto(self, path: str, body: dict[str, Any], schema: dict[str, Any]) -> Any:
        try:
            data = await self._post(path, self._constrain(body, schema, "json_schema"))
        except _StatusError as exc:
            # llama_cpp.server answers 500 (not 422) when its validation rejects the type.
            rejected = exc.status in (400, 422) or (exc.status == 500 and "response_format" in exc.text)
            if not rejected:
                raise
            data = await self._post(path, self._constrain(body, schema, "json_object"))
            self.json_mode = "json_object"
            return data
        self.json_mode = "json_schema"
        return data

    def _embed_batch(self, batch: list[str]) -> np.ndarray:
        body = {"model": self.config.model, "input": batch}
        try:
            data = retry(lambda: self._sync_call("POST", "/embeddings", body), _should_retry, self._backoff)
            rows = sorted(data["data"], key=lambda row: row.get("index", 0))
            vectors = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"Unexpected embeddings answer from {mask(self._base)}: {exc!r}") from exc
        except Exception as exc:
            raise self._translate(exc, "embedding") from exc
        if vectors.shape[0] != len(batch):
            raise ModelError(f"{mask(self._base)} returned {vectors.shape[0]} embeddings for {len(batch)} texts")
        return vectors

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self._client()
        size = self.config.embed_batch_size
        parts = [self._embed_batch(list(texts[i : i + size])) for i in range(0, len(texts), size)]
        if not parts:
            return np.zeros((0, 0), dtype=np.float32)
        out = np.concatenate(parts)
        np.divide(out, np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12), out=out)
        return out

    async def aclose(self) -> None:
        """Close the HTTP clients (call from inside the event loop that used the provider)."""
        await self._async.aclose()
        self.close()

    def close(self) -> None:
        self._async.close()
        with self._lock:
            if self._sync is not None:
                self._sync.close()
                self._sync = None
