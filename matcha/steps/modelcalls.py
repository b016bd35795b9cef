"""Model calls shared by the model steps, with the run-store cache that keeps us from paying twice.

Embeddings are content-addressed by (model fingerprint, text) and stored once, as float32 blocks
(one per model call); the ``embed`` step's vectors and the cache are the same blocks, so a later
``classify`` on the same model and field finds them. Generations are keyed by (model fingerprint,
prompt, system, schema, sampling parameters) and written the moment each one completes, so a run
killed in the middle of a ``generate`` step makes no new call for the records already generated
when it resumes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np

from matcha.models.base import Embedder, Generator
from matcha.runtime.faults import crash_point
from matcha.steps.base import StepContext


def _key(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


def embedding_key(model: Embedder, text: str, fingerprint: str | None = None) -> str:
    return "emb:" + _key(fingerprint or model.fingerprint, text)


def embed_cached(ctx: StepContext, model: Embedder, texts: Sequence[str]
                 ) -> tuple[np.ndarray, list[str], list[tuple[int, int] | None]]:
    """Vectors for ``texts`` (one model call for all cache misses), their store keys, and where each
    is stored (``(block, row)``; None for a vector kept the way stores did before blocks)."""
    fingerprint = model.fingerprint  # a pydantic dump and a hash: once per batch, not once per text
    keys = [embedding_key(model, t, fingerprint) for t in texts]
    unique = list(dict.fromkeys(keys))
    where: dict[str, tuple[int, int] | None] = dict(ctx.store.vectors_at(unique))
    rows = dict(zip(where, ctx.store.vectors_for([(k, at) for k, at in where.items()]), strict=True))
    legacy = ctx.store.cache_get_many([k for k in unique if k not in where])
    for k, blob in legacy.items():
        rows[k], where[k] = np.frombuffer(blob, dtype=np.float32), None
    missing = [k for k in unique if rows.get(k) is None]
    if missing:
        first = {k: t for k, t in zip(keys, texts, strict=True)}
        vectors = np.asarray(model.embed([first[k] for k in missing]), dtype=np.float32)
        where.update(ctx.store.put_vectors(missing, vectors))
        rows.update({k: vectors[i] for i, k in enumerate(missing)})
    ctx.store.add_step_extra(ctx.run_id, ctx.step_id,
                             {"cache_hits": len(keys) - len(missing), "computed": len(missing)})
    if not keys:
        return np.zeros((0, 0), dtype=np.float32), keys, []
    matrix = np.vstack([r for r in (rows[k] for k in keys) if r is not None])
    return matrix, keys, [where.get(k) for k in keys]


def generation_key(model: Generator, prompt: str, system: str | None, schema: dict[str, Any] | None,
                   params: dict[str, Any], salt: str = "") -> str:
    """The cache key of one generation. ``salt`` makes otherwise identical calls distinct (a repeat
    loop's attempt number and previous score: a retry is a new call, a resumed retry is not)."""
    parts = [model.fingerprint, prompt, system or "", json.dumps(schema, sort_keys=True),
             json.dumps(params, sort_keys=True)]
    return "gen:" + _key(*parts, *([salt] if salt else []))


Result = str | BaseException


def generate_cached(ctx: StepContext, model: Generator, prompts: Sequence[str], *, system: str | None,
                    schema: dict[str, Any] | None, params: dict[str, Any], concurrency: int,
                    accept: Callable[[str], str | None] | None = None, retries: int = 0,
                    salts: Sequence[str] | None = None) -> list[Result]:
    """Generate for every prompt with at most ``concurrency`` requests in flight.

    ``accept(text)`` returns a problem description for an unusable answer (invalid JSON, label
    outside the set...); such answers are retried up to ``retries`` times and are never cached.
    Each result is a string or the exception that ended its attempts.
    """
    keys = [generation_key(model, p, system, schema, params, salts[i] if salts else "")
            for i, p in enumerate(prompts)]
    cached = ctx.store.cache_get_many(list(dict.fromkeys(keys)))
    results: list[Result | None] = [cached[k].decode("utf-8") if k in cached else None for k in keys]
    todo = [i for i, r in enumerate(results) if r is None]
    calls = 0

    async def one(i: int, sem: asyncio.Semaphore) -> None:
        nonlocal calls
        problem = ""
        for _attempt in range(retries + 1):
            async with sem:
                calls += 1
                try:
                    text = await model.agenerate(prompts[i], system=system, schema=schema, **params)
                except Exception as exc:
                    results[i] = exc
                    return
            problem = (accept(text) if accept else None) or ""
            if not problem:
                results[i] = text
                ctx.store.cache_put_many({keys[i]: text.encode("utf-8")})
                crash_point("generate.cached")
                return
        results[i] = ValueError(f"unusable model answer after {retries + 1} attempt(s): {problem}")

    async def all_of() -> None:
        sem = asyncio.Semaphore(max(1, concurrency))
        jobs: list[Awaitable[None]] = [one(i, sem) for i in todo]
        await asyncio.gather(*jobs)

    if todo:
        asyncio.run(all_of())
    ctx.store.add_step_extra(ctx.run_id, ctx.step_id, {"cache_hits": len(keys) - len(todo), "model_calls": calls})
    return [r if r is not None else RuntimeError("no result") for r in results]
