"""``embed``: turn a text field into vectors, batched and streamed.

Vectors go to the run store (content-addressed by model and text, see :mod:`matcha.steps.modelcalls`);
the record gets a small reference (``embedding``: model name, dimension, store key and place) instead of
hundreds of floats, so records and checkpoints stay small. Later steps using the same model on the
same text read the stored vectors instead of recomputing them.
"""

from __future__ import annotations

from pydantic import Field

from matcha.models.base import Embedder
from matcha.steps.base import BatchOutcome, Record, Step, StepConfig, StepContext, register_step
from matcha.steps.modelcalls import embed_cached

DEFAULT_EMBEDDER = "default-embedder"


class EmbedConfig(StepConfig):
    model: str = Field(DEFAULT_EMBEDDER, description="Name of an embedding model under `models:`.")
    field: str = Field("text", description="Record field holding the text to embed.")
    output: str = Field("embedding", description="Field that receives the vector reference.")


def texts_of(batch: list[Record], field: str) -> tuple[list[Record], list[str], list[tuple[Record, str]]]:
    """Split a batch into records with a non-empty text in ``field`` and records to quarantine."""
    ok: list[Record] = []
    texts: list[str] = []
    bad: list[tuple[Record, str]] = []
    for rec in batch:
        value = rec.get(field)
        if isinstance(value, str) and value.strip():
            ok.append(rec)
            texts.append(value)
        else:
            bad.append((rec, f"field '{field}' is missing or empty"))
    return ok, texts, bad


@register_step("embed")
class EmbedStep(Step):
    Config = EmbedConfig
    references = {"model": "models"}  # noqa: RUF012 - class-level declaration
    model_capability = "embed"
    produces = "vectors"

    def process(self, batch: list[Record], ctx: StepContext) -> BatchOutcome:
        model = ctx.models(self.config.model)
        assert isinstance(model, Embedder)
        ok, texts, bad = texts_of(batch, self.config.field)
        if ok:
            vectors, keys, where = embed_cached(ctx, model, texts)
            dim = int(vectors.shape[1])
            for rec, key, at in zip(ok, keys, where, strict=True):
                ref = {"model": self.config.model, "dim": dim, "key": key}
                if at is not None:
                    ref["at"] = list(at)  # block and row: later steps read a batch's vectors in one go
                rec[self.config.output] = ref
        return BatchOutcome(out=ok, quarantined=bad)
