"""``matcha models check``: load each configured model and make one tiny call.

Every failure becomes a row with the error and a hint (start the server, pull the model, install
the offline bundle) instead of a traceback.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Literal

from matcha.errors import ModelError, ModelUnavailable
from matcha.models.base import CheckResult, Embedder, Generator, Provider
from matcha.secrets import mask

Use = Literal["embed", "generate"]


def _use(provider: Provider, wanted: Use | None) -> Use:
    if wanted is not None:
        return wanted
    return "generate" if "generate" in provider.capabilities else "embed"


def _split(exc: Exception) -> tuple[str, str]:
    """(error, hint) for one failure, secrets masked."""
    if isinstance(exc, ModelUnavailable):
        message = str(exc)
        if exc.hint and message.endswith(f". {exc.hint}"):
            message = message[: -len(exc.hint) - 2]
        return mask(message), mask(exc.hint)
    if isinstance(exc, ModelError):
        return mask(str(exc)), "the model answered with an error: check its server's logs"
    return mask(f"{type(exc).__name__}: {exc}"), "unexpected error: run with --debug and report it"


async def _check_one(name: str, provider: Provider, use: Use) -> CheckResult:
    kind = str(getattr(provider.config, "provider", "") or type(provider).__name__)
    result = CheckResult(name=name, provider=kind, model=provider.model_id, ok=False)
    started = time.perf_counter()
    try:
        await asyncio.to_thread(provider.load)
        result.load_seconds = time.perf_counter() - started
        started = time.perf_counter()
        if use == "generate":
            if not isinstance(provider, Generator):
                raise ModelError(f"provider '{result.provider}' cannot generate text")
            await provider.agenerate("Hello", max_tokens=4)
        else:
            if not isinstance(provider, Embedder):
                raise ModelError(f"provider '{result.provider}' cannot embed text")
            vectors = await asyncio.to_thread(provider.embed, ["ping"])
            if vectors.shape[0] != 1:
                raise ModelError(f"embedding 1 text returned shape {vectors.shape}")
        result.call_seconds = time.perf_counter() - started
        result.ok = True
    except Exception as exc:
        result.error, result.hint = _split(exc)
    finally:
        aclose = getattr(provider, "aclose", None)
        if aclose is not None:  # HTTP clients belong to this check's event loop
            await aclose()
    return result


async def acheck_models(providers: Mapping[str, Provider], uses: Mapping[str, Use] | None = None) -> list[CheckResult]:
    """Check each provider in turn; ``uses`` says which capability to test per model name
    (default: generation when the provider can generate, else embedding)."""
    uses = uses or {}
    return [await _check_one(name, p, _use(p, uses.get(name))) for name, p in providers.items()]


def check_models(providers: Mapping[str, Provider], uses: Mapping[str, Use] | None = None) -> list[CheckResult]:
    """Blocking wrapper of :func:`acheck_models` (call it outside an event loop)."""
    return asyncio.run(acheck_models(providers, uses))
