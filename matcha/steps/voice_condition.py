"""How ``generate`` writes in a voice: the profile read once, the passages nearest to each record's
topic, and the text they add to a prompt (see :mod:`matcha.steps.generate`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import structlog

from matcha.connectors.qdrant.store import VectorConnector
from matcha.models.base import Embedder
from matcha.steps.base import StepContext
from matcha.steps.embed import DEFAULT_EMBEDDER
from matcha.steps.modelcalls import embed_cached
from matcha.steps.voice_profile import load_voice

log = structlog.get_logger("matcha.step")


class Conditioning:
    """The voice a ``generate`` step writes in (built in ``warm_up``)."""

    def __init__(self, config: Any, ctx: StepContext, *, placed: bool):
        self.voice = load_voice(str(config.voice), ctx)
        self.k = int(config.examples)
        self.placed = placed  # the template places {{ examples }} / {{ voice }} itself
        self.ctx = ctx
        p = self.voice.profile
        self.info: dict[str, Any] = {"name": p.name, "summary": p.summary, "rules": p.rules, "vocabulary": p.vocabulary,
                     "phrases": p.phrases, "profile": self.voice.hash}
        index = p.index or {}
        try:
            embedder = ctx.models(str(index.get("model") or DEFAULT_EMBEDDER))
        except KeyError:  # a profile file made with a model this pipeline does not define
            log.warning("voice examples looked up with the default embedder", model=index.get("model"),
                        why="the profile's embedding model is not defined by this pipeline")
            index = {}
            embedder = ctx.models(DEFAULT_EMBEDDER)
        assert isinstance(embedder, Embedder)
        self.embedder = embedder
        self.connector: VectorConnector | None = None
        self.collection = str(index.get("collection") or "")
        self.key = str(index.get("voice") or p.key)
        if index.get("connector") and self.k:
            try:
                conn = ctx.connectors(str(index["connector"]))
            except KeyError:  # a profile file naming a connection this pipeline does not declare
                conn = None
            if isinstance(conn, VectorConnector):
                self.connector = conn
            else:
                log.info("voice examples looked up in memory", connection=index["connector"],
                         why="the profile's connection is not declared by this pipeline")
        self.matrix: np.ndarray | None = None
        if self.connector is None and self.k:
            self.matrix, _, _ = embed_cached(ctx, self.embedder, [e.text for e in p.exemplars])

    def nearest(self, queries: list[str]) -> list[list[dict[str, Any]]]:
        """The ``k`` passages of the voice nearest to each query, best first: ``{id, text, score}``."""
        if not self.k or not queries:
            return [[] for _ in queries]
        vectors, _, _ = embed_cached(self.ctx, self.embedder, queries)
        if self.connector is not None:
            store = self.connector.open()
            try:
                hits = store.search(self.collection, vectors, self.k, {"voice": self.key}, None)
            finally:
                store.close()
            return [[{"id": str((h["payload"] or {}).get("passage", h["id"])),
                      "text": str((h["payload"] or {}).get("text", "")), "score": round(h["score"], 4)}
                     for h in found] for found in hits]
        assert self.matrix is not None
        exemplars = self.voice.profile.exemplars
        sims = vectors @ self.matrix.T
        k = min(self.k, sims.shape[1])
        top = np.argsort(-sims, axis=1)[:, :k]
        return [[{"id": exemplars[j].id, "text": exemplars[j].text, "score": round(float(sims[i, j]), 4)}
                 for j in row] for i, row in enumerate(top)]

    def context(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        """What a template may use: ``examples`` and ``voice``."""
        return {"examples": examples, "voice": self.info}

    def complete(self, prompt: str, examples: list[dict[str, Any]]) -> str:
        """The prompt with the examples and the rules before it, unless the template placed them."""
        return prompt if self.placed else voice_prompt(prompt, examples, self.info)


def voice_prompt(prompt: str, examples: list[dict[str, Any]], voice: dict[str, Any]) -> str:
    """A prompt conditioned on a voice: the passages, then the rules, then the prompt. Written as a
    document that goes on in the same voice, so that base models (which continue text) and chat models
    (which follow instructions) both read it right."""
    parts = [f"Passages from the pages of {voice['name']}:"] if examples else []
    parts += [str(e["text"]) for e in examples]
    rules = voice.get("rules") or {}
    if rules.get("do"):
        parts.append("Do: " + "; ".join(rules["do"]) + ".")
    if rules.get("dont"):
        parts.append("Don't: " + "; ".join(rules["dont"]) + ".")
    if parts:
        parts.append(f"In the same voice as these passages of {voice['name']}:")
    parts.append(prompt)
    return "\n\n".join(parts)
