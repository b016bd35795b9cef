"""``generate``: write text (or JSON) for each record with a self-hosted LLM.

Prompts are Jinja2 templates over the record's fields, inline or in a file, rendered by
:mod:`matcha.templating` (sandboxed, read-only, bounded in time and size) with undefined fields as
errors; a record whose prompt cannot be rendered is quarantined with the reason.
With ``schema`` the answer must be JSON valid against it: it is validated, retried, and the parsed
object stored. ``concurrency`` bounds requests in flight (default 1: safe for a single Ollama with
``OLLAMA_NUM_PARALLEL=1``). A record whose generation fails is quarantined with the reason
(``on_error: quarantine``) or fails the run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Template
from pydantic import Field, model_validator

from matcha.models.base import Generator
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
from matcha.steps.modelcalls import generate_cached
from matcha.templating import TemplateError, compile_template, render

DEFAULT_GENERATOR = "default-generator"


class GenerateConfig(StepConfig):
    model: str = Field(DEFAULT_GENERATOR, description="Name of a generation model under `models:`.")
    prompt: str | None = Field(
        None, description="Inline Jinja2 template over record fields, e.g. 'Reply to: {{ text }}'."
    )
    prompt_file: ProjectPath | None = Field(None, description="Template file (relative to the project root).")
    system: str | None = Field(None, description="Optional system prompt template (chat models).")
    output: str = Field("draft", description="Field receiving the generated text (or parsed JSON).")
    schema_: dict[str, Any] | None = Field(None, alias="schema",
                                           description="JSON schema the answer must satisfy (structured output).")
    max_tokens: int = Field(256, ge=1, le=32768, description="Upper bound on generated tokens.")
    temperature: float = Field(0.2, ge=0.0, le=2.0, description="Sampling temperature.")
    concurrency: int = Field(1, ge=1, le=64, description="Requests in flight at once.")
    retries: int = Field(2, ge=0, le=10, description="Retries of an answer that fails the schema.")
    strip: bool = Field(True, description="Strip surrounding whitespace from text answers.")
    stop: list[str] = Field(default_factory=list,
                            description="Cut text answers at the first of these strings (useful with base models).")

    @model_validator(mode="after")
    def _one_prompt(self) -> GenerateConfig:
        if (self.prompt is None) == (self.prompt_file is None):
            raise ValueError("give exactly one of `prompt` (inline template) or `prompt_file`")
        return self


def _compile(source: str) -> Template:
    return compile_template(source, strict=True, keep_trailing_newline=True)


@register_step("generate")
class GenerateStep(Step):
    Config = GenerateConfig
    references = {"model": "models"}  # noqa: RUF012 - class-level declaration
    model_capability = "generate"
    templated = ("prompt", "system")

    def _template_source(self, base_dir: Path) -> str:
        if self.config.prompt is not None:
            return str(self.config.prompt)
        return resolve_in_project(base_dir, self.config.prompt_file).read_text(encoding="utf-8")

    def check(self, ctx: LoadContext) -> list[StaticIssue]:
        where = ("prompt",) if self.config.prompt is not None else ("prompt_file",)
        try:
            source = self._template_source(ctx.base_dir)
        except OSError as exc:
            return [StaticIssue(where, f"cannot read prompt file: {exc.strerror}: {exc.filename}",
                                "Paths are relative to the project root (the folder holding connectors/)")]
        except (ValueError, UnicodeDecodeError) as exc:  # a symlink out of the project, or not UTF-8
            return [StaticIssue(where, f"cannot use prompt file: {exc}", "Name a UTF-8 file inside the project")]
        issues = []
        for path, text in ((where, source), (("system",), self.config.system)):
            if text is None:
                continue
            try:
                _compile(text)
            except TemplateError as exc:
                issues.append(StaticIssue(path, exc.message, exc.hint))
        if self.config.schema_ is not None:
            import jsonschema

            try:
                jsonschema.Draft202012Validator.check_schema(self.config.schema_)
            except jsonschema.SchemaError as exc:
                issues.append(StaticIssue(("schema",), f"invalid JSON schema: {exc.message}", "Fix the schema"))
        return issues

    def warm_up(self, ctx: StepContext) -> None:
        self._prompt = _compile(self._template_source(ctx.base_dir))
        self._system = _compile(self.config.system) if self.config.system else None
        model = ctx.models(self.config.model)
        assert isinstance(model, Generator)
        self._model = model
        self._validator = None
        if self.config.schema_ is not None:
            import jsonschema

            self._validator = jsonschema.Draft202012Validator(self.config.schema_)

    def _accept(self, text: str) -> str | None:
        if self._validator is None:
            return None if text.strip() else "empty answer"
        try:
            value = json.loads(text)
        except ValueError:
            return f"not valid JSON: {text[:80]!r}"
        error = next(iter(self._validator.iter_errors(value)), None)
        return f"does not match the schema: {error.message}" if error else None

    def _finish(self, text: str) -> str:
        for stop in self.config.stop:
            text = text.split(stop, 1)[0]
        return text.strip() if self.config.strip else text

    def _render(self, rec: Record) -> tuple[str, str | None]:
        """The prompt and system prompt for ``rec``; a failure says which template it was."""
        texts: list[str] = []
        for label, template in (("prompt", self._prompt), ("system", self._system)):
            try:
                texts.append(render(template, rec) if template is not None else "")
            except TemplateError as exc:
                raise TemplateError(f"{label} template: {exc.message}", exc.hint) from exc
        return texts[0], texts[1] if self._system is not None else None

    def process(self, batch: list[Record], ctx: StepContext) -> BatchOutcome:
        out = BatchOutcome()
        ready: list[Record] = []
        prompts: list[str] = []
        systems: set[str | None] = set()
        for rec in batch:
            try:
                prompt, system = self._render(rec)
            except TemplateError as exc:
                out.quarantined.append((rec, str(exc)[:500]))
                continue
            prompts.append(prompt)
            systems.add(system)
            ready.append(rec)
        # one system prompt per batch keeps the cache key simple; per-record systems go one by one
        if len(systems) > 1 and len(batch) > 1:
            raise ValueError("system prompt differs between records")  # isolated record by record
        results = generate_cached(
            ctx, self._model, prompts, system=next(iter(systems), None), schema=self.config.schema_,
            params={"max_tokens": self.config.max_tokens, "temperature": self.config.temperature,
                    **({"stop": self.config.stop} if self.config.stop and self.config.schema_ is None else {})},
            concurrency=self.config.concurrency, accept=self._accept, retries=self.config.retries)
        for rec, res in zip(ready, results, strict=True):
            if isinstance(res, BaseException):
                out.quarantined.append((rec, f"{type(res).__name__}: {res}"[:500]))
            elif self.config.schema_ is not None:
                rec[self.config.output] = json.loads(res)
                out.out.append(rec)
            else:
                rec[self.config.output] = self._finish(res)
                out.out.append(rec)
        return out
