"""Ollama: generation through ``/api/chat`` or ``/api/generate``, embeddings through ``/api/embed``.

Uses the official ``ollama`` client. Ollama serves one request per model at a time by default
(``OLLAMA_NUM_PARALLEL=1``) and answers 503 once its queue (``OLLAMA_MAX_QUEUE``) is full, so 503,
429, timeouts and connection errors are retried with backoff and jitter; other 4xx are not.
``keep_alive`` is sent with every request so the model stays loaded for the length of a job.

Errors::

    404 model not found     -> ModelUnavailable, hint ``ollama pull <model>``
    connection refused      -> ModelUnavailable, hint to start Ollama or fix ``host``
    anything else           -> ModelError
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, ClassVar, Literal, TypeVar

import httpx
import numpy as np
from pydantic import Field

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
    schema_instruction,
)
from matcha.secrets import mask

T = TypeVar("T")


class OllamaConfig(ProviderConfig):
    provider: Literal["ollama"] = "ollama"
    model: str = Field(description="Ollama model, e.g. mistral, qwen2.5:7b, nomic-embed-text")
    host: str = Field("http://127.0.0.1:11434", description='Ollama server URL, e.g. "${env:OLLAMA_HOST}"')
    endpoints: list[EndpointConfig] = Field(default_factory=list, description="replicas serving the model, instead "
                                            "of `host`: [{url, max_concurrency}]; requests spread, with failover "
                                            "(a replica whose queue is full, HTTP 503, is passed over)")
    failover_seconds: float = Field(30.0, ge=0, le=3600, description="how long a failing replica is set aside")
    mode: Literal["chat", "generate"] = Field("chat", description="chat (/api/chat) or generate (/api/generate)")
    keep_alive: str = Field("30m", description="how long Ollama keeps the model loaded; sent with every request")
    options: dict[str, Any] = Field(default_factory=dict, description="Ollama options: temperature, num_ctx, seed, ...")
    timeout: float = Field(120.0, description="seconds per request")
    max_retries: int = Field(5, ge=0, description="retries of 503/429/502/504, timeouts and connection errors")
    retry_backoff: float = Field(0.5, ge=0, description="first retry delay bound in seconds (exponential, full jitter)")
    embed_batch_size: int = Field(64, ge=1, description="texts per /api/embed call")


async def _close_all(clients: dict[str, Any]) -> None:
    for client in clients.values():
        await client.close()


def _replica_fault(exc: Exception) -> bool:
    """A failure of the replica (try another one): refused, timed out, queue full (503), overloaded."""
    import ollama

    if isinstance(exc, ollama.ResponseError):
        return exc.status_code in FAILOVER_STATUS
    return isinstance(exc, ConnectionError | httpx.TransportError)


def _should_retry(exc: BaseException) -> RetryDecision:
    import ollama

    if isinstance(exc, ollama.ResponseError):
        return 0.0 if exc.status_code in RETRY_STATUS else None
    # The client turns httpx.ConnectError into the builtin ConnectionError.
    if isinstance(exc, ConnectionError | httpx.TransportError):
        return 0.0
    return None


@PROVIDERS.register("ollama")
class OllamaProvider(Embedder, Generator):
    """A model served by Ollama, for generation (chat or generate API) and embeddings."""

    Config = OllamaConfig
    capabilities = frozenset({"embed", "generate"})
    config: OllamaConfig
    fingerprint_exclude: ClassVar[set[str]] = {
        *Generator.fingerprint_exclude,
        "timeout",
        "max_retries",
        "retry_backoff",
        "embed_batch_size",
        "endpoints",  # replicas of one model: adding one must not make cached answers unusable
        "failover_seconds",
    }

    def __init__(self, name: str, config: OllamaConfig):
        super().__init__(name, config)
        self._backoff = Backoff(config.max_retries, config.retry_backoff)
        replicas = [(e.url, e.max_concurrency) for e in config.endpoints] or [(config.host, 1024)]
        self._pool = Pool(replicas, config.failover_seconds)
        self._sync: dict[str, Any] = {}
        self._sync_lock = threading.Lock()
        self._async: PerLoop[dict[str, Any]] = PerLoop(self._new_async_clients, _close_all)

    def _import(self) -> Any:
        try:
            import ollama
        except ImportError as exc:
            raise ModelUnavailable("The 'ollama' client package is not installed", "pip install ollama") from exc
        return ollama

    def _new_async_clients(self) -> dict[str, Any]:
        ollama = self._import()
        return {ep.url: ollama.AsyncClient(host=ep.url, timeout=self.config.timeout) for ep in self._pool.endpoints}

    def _client(self, url: str | None = None) -> Any:
        with self._sync_lock:
            if not self._sync:
                ollama = self._import()
                self._sync = {ep.url: ollama.Client(host=ep.url, timeout=self.config.timeout)
                              for ep in self._pool.endpoints}
            return self._sync[url or self._pool.endpoints[0].url]

    def _on_replicas(self, fn: Callable[[Any], T]) -> T:
        """``fn(client)`` on the best replica, failing over (see :mod:`matcha.models.endpoints`)."""
        self._client()
        return failover(self._pool, lambda ep: fn(self._client(ep.url)), _replica_fault)

    def _translate(self, exc: Exception, what: str) -> ModelError:
        """Turn a client error (after retries) into Matcha's error with a fix hint."""
        ollama = self._import()
        model, host = self.config.model, mask(self._pool.describe())
        if isinstance(exc, ollama.ResponseError):
            detail = mask(str(exc.error))
            if exc.status_code == 404:
                return ModelUnavailable(f"Ollama at {host} has no model '{model}' ({detail})", f"ollama pull {model}")
            return ModelError(f"Ollama {what} failed with HTTP {exc.status_code}: {detail}")
        if isinstance(exc, ConnectionError | httpx.ConnectError):
            return ModelUnavailable(f"Cannot connect to Ollama at {host}", "start Ollama (`ollama serve`) or fix host")
        if isinstance(exc, httpx.TimeoutException):
            return ModelError(
                f"Ollama {what} timed out after {self.config.timeout:g}s. "
                "Raise 'timeout' in the model config, or lower the load on the server"
            )
        return ModelError(f"Ollama {what} failed: {mask(str(exc)) or type(exc).__name__}")

    def _call(self, fn: Callable[[], T], what: str) -> T:
        try:
            return retry(fn, _should_retry, self._backoff)
        except Exception as exc:
            raise self._translate(exc, what) from exc

    def load(self) -> None:
        """Check that the server answers and has the model (``/api/show``; no weights are loaded)."""
        self._client()
        self._call(lambda: self._on_replicas(lambda c: c.show(self.config.model)), "model lookup")

    def _options(self, max_tokens: int | None, temperature: float | None) -> dict[str, Any]:
        options = dict(self.config.options)
        if temperature is not None:
            options["temperature"] = temperature
        if max_tokens is not None:
            options["num_predict"] = max_tokens
        return options

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
        clients = self._async.get()
        if schema is not None:
            prompt += schema_instruction(schema)
        common: dict[str, Any] = {
            "model": self.config.model,
            "format": schema,
            "options": {**self._options(max_tokens, temperature), **({"stop": stop} if stop else {})},
            "keep_alive": self.config.keep_alive,
        }

        async def attempt(ep: Endpoint) -> str:
            client = clients[ep.url]
            if self.config.mode == "chat":
                messages = [{"role": "system", "content": system}] if system else []
                messages.append({"role": "user", "content": prompt})
                chat = await client.chat(messages=messages, **common)
                return str(chat.message.content or "")
            gen = await client.generate(prompt=prompt, system=system, **common)
            return str(gen.response or "")

        async def call() -> str:
            return await afailover(self._pool, attempt, _replica_fault)

        try:
            return await aretry(call, _should_retry, self._backoff)
        except Exception as exc:
            raise self._translate(exc, "generation") from exc

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self._client()
        size = self.config.embed_batch_size
        parts: list[np.ndarray] = []
        for start in range(0, len(texts), size):
            batch = list(texts[start : start + size])
            def embed_on(client: Any, batch: list[str] = batch) -> Any:
                return client.embed(model=self.config.model, input=batch, keep_alive=self.config.keep_alive)

            response = self._call(partial(self._on_replicas, embed_on), "embedding")
            vectors = np.asarray(response.embeddings, dtype=np.float32)
            if vectors.shape[0] != len(batch):
                raise ModelError(f"Ollama returned {vectors.shape[0]} embeddings for {len(batch)} texts")
            parts.append(vectors)
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
        with self._sync_lock:
            for client in self._sync.values():
                client.close()
            self._sync = {}
