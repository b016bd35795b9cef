"""Provider interfaces and registry.

A pipeline's ``models:`` maps a name to ``{provider: <name>, ...}``; the provider's ``Config``
(pydantic) validates the rest. Steps receive an :class:`Embedder` or :class:`Generator` built from
that config. Constructors are cheap; weights load or servers are contacted on first use
(``load()``), so validating a pipeline never touches a model.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from matcha.registry import Registry

if TYPE_CHECKING:
    import numpy as np


class ProviderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    provider: str


@dataclass
class CheckResult:
    """One row of ``matcha models check``."""

    name: str
    provider: str
    model: str
    ok: bool
    load_seconds: float | None = None
    call_seconds: float | None = None
    error: str = ""
    hint: str = ""


class Provider(ABC):
    Config: ClassVar[type[ProviderConfig]]
    capabilities: ClassVar[frozenset[str]]  # subset of {"embed", "generate"}

    def __init__(self, name: str, config: Any):
        self.name = name
        self.config = config

    @property
    def model_id(self) -> str:
        return str(getattr(self.config, "model", "") or "")

    @property
    def fingerprint(self) -> str:
        """Identifies model + parameters, for cache keys. Secrets are never part of it."""
        data = self.config.model_dump(mode="json", exclude=self.fingerprint_exclude)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    fingerprint_exclude: ClassVar[set[str]] = {"api_key", "api_key_env", "host", "base_url", "keep_alive"}

    def load(self) -> None:  # noqa: B027 - optional hook
        """Load weights / contact the server. Called once before the first call."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """L2-normalise the rows of a float32 matrix in place (the :class:`Embedder` contract) and return it.
    Most models normalise already; one vectorised pass guarantees it for every model."""
    import numpy as np

    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    np.divide(vectors, np.maximum(norms, 1e-12), out=vectors)
    return vectors


def length_batches(lengths: Sequence[int], budget: int, max_items: int) -> list[list[int]]:
    """Group the indices of ``lengths`` for a model that pads every call to its longest input.

    Longest first (ties keep their order), so each group's first item is its longest and the
    runtime's memory arena reaches its largest size on the first call and is reused afterwards;
    each group's padded size ``len(group) * longest`` stays within ``budget`` (an item over the
    budget goes alone) and a group holds at most ``max_items``.
    """
    groups: list[list[int]] = []
    current: list[int] = []
    longest = 1
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        if current and (len(current) >= max_items or (len(current) + 1) * longest > budget):
            groups.append(current)
            current = []
        if not current:
            longest = max(int(lengths[i]), 1)
        current.append(i)
    if current:
        groups.append(current)
    return groups


def embed_by_length(texts: Sequence[str], lengths: Sequence[int], budget: int, max_items: int, dim: int,
                    call: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """``call`` on the :func:`length_batches` groups of ``texts``; rows come back in input order."""
    import numpy as np

    out = np.empty((len(texts), dim), dtype=np.float32)
    for group in length_batches(lengths, budget, max_items):
        out[group] = call([texts[i] for i in group])
    return out


class Embedder(Provider):
    @abstractmethod
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return a float32 array of shape (len(texts), dim). Rows are L2-normalised."""


class Generator(Provider):
    @abstractmethod
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
        """Generate text for one prompt. With ``schema``, the output is constrained to that JSON schema
        (the provider states it in the prompt as well) and the raw JSON text is returned. Generation
        ends at the first of the ``stop`` strings (not included)."""


PROVIDERS: Registry[type[Provider]] = Registry(
    "model provider",
    "matcha.providers",
    [
        "matcha.models.onnx_provider",
        "matcha.models.fastembed_provider",
        "matcha.models.ollama_provider",
        "matcha.models.openai_provider",
        "matcha.models.llamacpp_provider",
        "matcha.models.hashing_provider",
    ],
)
