"""``hashing``: a fast, deterministic, dependency-free embedder (the hashing trick over words).

Words and word pairs are hashed into ``dim`` signed buckets (scikit-learn's ``HashingVectorizer``)
and each row is L2-normalised. It knows no meaning (synonyms land apart) but needs no model file
and embeds hundreds of thousands of texts a second: for benchmarks that measure Matcha rather than
the embedder, for tests, and as a lexical baseline. Use a real embedder (``onnx``, the default) for
segments of meaning.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import Field

from matcha.models.base import PROVIDERS, Embedder, ProviderConfig


class HashingConfig(ProviderConfig):
    provider: Literal["hashing"] = "hashing"
    dim: int = Field(384, ge=8, le=8192, description="Vector dimension (hash buckets).")
    ngrams: int = Field(2, ge=1, le=3, description="Word n-grams hashed: 1 = words, 2 = words and pairs.")


@PROVIDERS.register("hashing")
class HashingEmbedder(Embedder):
    Config = HashingConfig
    capabilities = frozenset({"embed"})

    def load(self) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer

        self._vectorizer = HashingVectorizer(n_features=self.config.dim, ngram_range=(1, self.config.ngrams),
                                             alternate_sign=True, norm="l2", dtype=np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not hasattr(self, "_vectorizer"):
            self.load()
        matrix = self._vectorizer.transform(list(texts)).toarray().astype(np.float32)
        empty = ~matrix.any(axis=1)
        matrix[empty, 0] = 1.0  # a text with no word still gets a unit vector
        return matrix
