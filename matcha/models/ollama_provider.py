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
    mode: Literal["chat", "generate"] = Field("chat", description="chat (/api/chat) or generate (/api/generate)")
    keep_alive: str = Field("30m", description="how long Ollama keeps the model loaded; sent with every request")
    options: dict[str, Any] = Field(default_factory=dict, description="Ollama options: temperature, num_ctx, seed, ...")
    timeout: float = Field(120.0, description="seconds per request")
    max_retries: int = Field(5, ge=0, description="retries of 503/429/502/504, timeouts and connection errors")
    retry_backoff: float = Field(0.5, ge=0, description="first retry delay bound in seconds (exponential, full jitter)")
    embed_batch_size: int = Field(64, ge=1, description="texts per /api/embed call")


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
    }

    def __init__(self, name: str, config: OllamaConfig):
        super().__init__(name, config)
        self._backoff = Backoff(config.max_retries, config.retry_backoff)
        self._sync: Any = None
        self._sync_lock = threading.Lock()
        self._async: PerLoop[Any] = PerLoop(self._new_async_client, lambda client: client.close())

    def _import(self) -> Any:
        try:
            import ollama
        except ImportError as exc:
            raise ModelUnavailable("The 'ollama' client package is not installed", "pip install ollama") from exc
        return ollama

    def _new_async_client(self) -> Any:
        return self._import().AsyncClient(host=self.config.host, timeout=self.config.timeout)

    def _client(self) -> Any:
        with self._sync_lock:
            if self._sync is None:
                self._sync = self._import().Client(host=self.config.host, timeout=self.config.timeout)
            return self._sync

    def _translate(self, exc: Exception, what: str) -> ModelError:
        """Turn a client error (after retries) into Matcha's error with a fix hint."""
        ollama = self._import()
        model, host = self.config.model, mask(self.config.host)
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
        client = self._client()
        self._call(lambda: client.show(self.config.model), "model lookup")

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
        client = self._async.get()
        if schema is not None:
            prompt += schema_instruction(schema)
        common: dict[str, Any] = {
            "model": self.config.model,
            "format": schema,
            "options": {**self._options(max_tokens, temperature), **({"stop": stop} if stop else {})},
            "keep_alive": self.config.keep_alive,
        }

        async def call() -> str:
            if self.config.mode == "chat":
                messages = [{"role": "system", "content": system}] if system else []
                messages.append({"role": "user", "content": prompt})
                chat = await client.chat(messages=messages, **common)
                return str(chat.message.content or "")
            gen = await client.generate(prompt=prompt, system=system, **common)
            return str(gen.response or "")

        try:
            return await aretry(call, _should_retry, self._backoff)
        except Exception as exc:
            raise self._translate(exc, "generation") from exc

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        client = self._client()
        size = self.config.embed_batch_size
        parts: list[np.ndarray] = []
        for start in range(0, len(texts), size):
            batch = list(texts[start : start + size])
            call = partial(client.embed, model=self.config.model, input=batch, keep_alive=self.config.keep_alive)
            response = self._call(call, "embedding")
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
            if self._sync is not None:
                self._sync.close()
                self._sync = None
