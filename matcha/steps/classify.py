"""``classify``: put each record in one of a fixed set of labels.

- ``method: examples`` (default): a few-shot classifier trained from labeled examples (inline or
  a CSV) on the pipeline's embedder; outputs the label and a calibrated score. Fast, no LLM.
- ``method: llm``: zero-shot with a generator whose output is constrained to the label set by a
  JSON schema; an answer outside the set is retried, then the record is quarantined.

Labels and examples are validated when the pipeline is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, model_validator

from matcha.errors import PipelineError
from matcha.ml.fewshot import FewShotClassifier, embed_pooled, load_examples_csv, validate_examples
from matcha.models.base import PROVIDERS, Embedder, Generator
from matcha.spec.paths import ProjectPath, resolve_in_project
from matcha.steps.base import (
    BatchOutcome,
    LoadContext,
    Record,
    StaticIssue,
    Step,
    StepConfig,
    StepContext,
    register_step,
)
from matcha.steps.embed import DEFAULT_EMBEDDER, texts_of
from matcha.steps.modelcalls import embed_cached, generate_cached

log = structlog.get_logger("matcha.step")


class Example(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    label: str


class ClassifyConfig(StepConfig):
    method: Literal["examples", "llm"] = Field("examples", description="examples: few-shot on embeddings; "
                                               "llm: zero-shot with a generator constrained to the labels.")
    model: str | None = Field(None, description="An embedder (method examples; default: default-embedder) "
                              "or a generator (method llm; default: default-generator).")
    field: str = Field("text", description="Record field holding the text to classify.")
    labels: list[str] | None = Field(None, description="The labels; default: those used by the examples.")
    examples: list[Example] | None = Field(None, description="Inline labeled examples [{text, label}].")
    examples_file: ProjectPath | None = Field(None,
                                              description="CSV with columns text,label (relative to the project).")
    min_examples: int = Field(3, ge=1, description="Fewest examples accepted per label (method examples).")
    output: str = Field("label", description="Field receiving the label; the score goes to <output>_score.")
    instructions: str = Field("Classify the text.", description="Task description for method llm.")
    retries: int = Field(2, ge=0, le=10, description="Retries of an answer outside the label set (method llm).")
    concurrency: int = Field(1, ge=1, le=64, description="Parallel requests (method llm).")

    @model_validator(mode="after")
    def _needs_labels(self) -> ClassifyConfig:
        if self.method == "llm" and not self.labels:
            raise ValueError("method llm needs `labels`")
        if self.method == "examples" and not (self.examples or self.examples_file) and not self._builtin():
            raise ValueError("method examples needs `examples` or `examples_file`")
        return self

    def _builtin(self) -> bool:
        return False


class Classifier(Step):
    """Shared by ``classify`` and ``sentiment``."""

    Config: ClassVar[type[StepConfig]] = ClassifyConfig
    references = {"model": "models"}  # noqa: RUF012 - class-level declaration
    default_output = "label"

    def _model_name(self) -> str:
        from matcha.steps.generate import DEFAULT_GENERATOR

        return self.config.model or (DEFAULT_GENERATOR if self.config.method == "llm" else DEFAULT_EMBEDDER)

    def model_names(self) -> list[str]:
        return [self._model_name()]

    def examples(self, base_dir: Path) -> list[tuple[str, str]]:
        cfg = self.config
        out = [(e.text, e.label) for e in cfg.examples or []]
        if cfg.examples_file:
            out += load_examples_csv(resolve_in_project(base_dir, cfg.examples_file))
        return out

    def check(self, ctx: LoadContext) -> list[StaticIssue]:
        issues = []
        name = self._model_name()
        need = "generate" if self.config.method == "llm" else "embed"
        model = ctx.models.get(name)
        provider = PROVIDERS.get(model.provider) if model is not None else None
        # an unknown model is reported by the `references` check
        if model is not None and provider is not None and need not in provider.capabilities:
            issues.append(StaticIssue(("model",), f"model '{name}' (provider {model.provider}) cannot {need}",
                                      f"method {self.config.method} needs a model that can {need}"))
        if self.config.method == "examples":
            try:
                examples = self.examples(ctx.base_dir)
            except PipelineError as exc:
                return [*issues, *(StaticIssue(("examples_file",), str(i)) for i in exc.issues)]
            where = ("examples_file",) if self.config.examples_file and not self.config.examples else ("examples",)
            for problem in validate_examples(examples, self.config.labels, self.config.min_examples):
                issues.append(StaticIssue(where, problem, "Fix the examples (at least "
                                          f"{self.config.min_examples} per label; labels from `labels:`)"))
        return issues

    def warm_up(self, ctx: StepContext) -> None:
        self._model = ctx.models(self._model_name())
        if self.config.method == "examples":
            assert isinstance(self._model, Embedder)
            examples = self.examples(ctx.base_dir)
            log.info("fitting classifier", step=ctx.step_id, examples=len(examples), model=self._model_name())
            texts, labels = zip(*examples, strict=True)
            self._clf = FewShotClassifier().fit(self._vectors(ctx, list(texts)), list(labels))

    def process(self, batch: list[Record], ctx: StepContext) -> BatchOutcome:
        ok, texts, bad = texts_of(batch, self.config.field)
        out = BatchOutcome(quarantined=bad)
        if not ok:
            return out
        label_field, score_field = self.config.output, f"{self.config.output}_score"
        if self.config.method == "examples":
            labels, scores = self._clf.predict(self._vectors(ctx, texts))
            for rec, label, score in zip(ok, labels, scores, strict=True):
                rec[label_field], rec[score_field] = label, round(float(score), 4)
            out.out = ok
            return out
        assert isinstance(self._model, Generator)
        results = generate_cached(ctx, self._model, [self._prompt(t) for t in texts], system=None,
                                  schema=self._schema(), params={"temperature": 0.0, "max_tokens": 32},
                                  concurrency=self.config.concurrency, accept=self._accept,
                                  retries=self.config.retries)
        for rec, res in zip(ok, results, strict=True):
            if isinstance(res, BaseException):
                out.quarantined.append((rec, f"{type(res).__name__}: {res}"))
            else:
                rec[label_field], rec[score_field] = json.loads(res)["label"], None
                out.out.append(rec)
        return out

    def _vectors(self, ctx: StepContext, texts: list[str]) -> Any:
        """Examples and inputs go through the same preparation (links, emoji, long texts split into
        sentences and averaged); every piece is embedded through the run-store cache."""
        model = self._model
        assert isinstance(model, Embedder)
        return embed_pooled(lambda pieces: embed_cached(ctx, model, list(pieces))[0], texts)

    def _schema(self) -> dict[str, Any]:
        return {"type": "object", "properties": {"label": {"type": "string", "enum": self.config.labels}},
                "required": ["label"], "additionalProperties": False}

    def _prompt(self, text: str) -> str:
        labels = ", ".join(self.config.labels or [])
        return (f"{self.config.instructions}\nAllowed labels: {labels}.\n"
                f'Answer with JSON: {{"label": "<one of the allowed labels>"}}.\n\nText: {text}\nJSON: ')

    def _accept(self, text: str) -> str | None:
        try:
            label = json.loads(text).get("label")
        except (ValueError, AttributeError):
            return f"not a JSON object: {text[:80]!r}"
        if label not in (self.config.labels or []):
            return f"label {label!r} is not one of {self.config.labels}"
        return None


@register_step("classify")
class ClassifyStep(Classifier):
    Config = ClassifyConfig
