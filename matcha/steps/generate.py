"""``generate``: write text (or JSON) for each record with a self-hosted LLM.

Prompts are Jinja2 templates over the record's fields, inline or in a file, rendered by
:mod:`matcha.templating` (sandboxed, read-only, bounded in time and size) with undefined fields as
errors; a record whose prompt cannot be rendered is quarantined with the reason.
With ``schema`` the answer must be JSON valid against it: it is validated, retried, and the parsed
object stored. ``concurrency`` bounds requests in flight (default 1: safe for a single Ollama with
``OLLAMA_NUM_PARALLEL=1``). A record whose generation fails is quarantined with the reason
(``on_error: quarantine``) or fails the run.

With ``voice`` (a ``voice_profile`` step upstream, or a profile file) each prompt is conditioned on
the voice: the ``examples`` passages of the voice nearest to the record's topic (``voice_query``,
default the rendered prompt; looked up in the profile's Qdrant collection when it has one, else
among its exemplars in memory) and its do/don't rules. A template places them itself with
``{{ examples }}`` (a list of ``{id, text, score}``) and ``{{ voice }}`` (``name``, ``summary``,
``rules``, ``vocabulary``, ``phrases``); otherwise they are put before the prompt. The passages used
are kept in ``examples_field`` for the reviewer. The profile is read once, when the step starts.

In a ``repeat`` loop, a record being written again holds ``attempt`` and ``attempts`` (what each
earlier attempt wrote and how it was judged): the last judgement is added to the prompt (unless the
template uses ``attempts``) and is part of the call's cache key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from matcha.steps.repeat import attempt_salt, feedback
from matcha.templating import TemplateError, compile_template, render

if TYPE_CHECKING:
    from matcha.steps.voice_condition import Conditioning

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
    voice: str | None = Field(None, description="Write in a voice: a `voice_profile` step upstream, or a profile "
                              "file (.yaml, relative to the project root).")
    examples: int = Field(3, ge=0, le=20, description="With `voice`: passages of the voice nearest to the topic "
                          "put in the prompt.")
    voice_query: str | None = Field(None, description="With `voice`: template of the topic the examples are looked "
                                    "up with (default: the rendered prompt).")
    examples_field: str | None = Field("exemplars", description="With `voice`: field receiving the passages used "
                                       "([{id, text, score}]); null: not kept.")

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
    templated = ("prompt", "system", "voice_query")

    def side_inputs(self) -> list[str]:
        from matcha.steps.voice_profile import is_profile_file

        ref = self.config.voice
        return [ref] if ref and not is_profile_file(ref) else []

    def written_fields(self) -> list[str]:
        keep = [self.config.examples_field] if self.config.voice and self.config.examples_field else []
        return [self.config.output, *keep]

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
        if self.config.voice:
            from matcha.steps.voice_profile import check_voice_ref

            issues += check_voice_ref(self.config.voice, ctx)
        for path, text in ((where, source), (("system",), self.config.system), (("voice_query",),
                                                                                 self.config.voice_query)):
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
        from jinja2 import meta

        names = meta.find_undeclared_variables(self._prompt.environment.parse(self._template_source(ctx.base_dir)))
        self._feedback = "attempts" not in names  # the template does not say how earlier attempts were judged
        self._voice: Conditioning | None = None
        if self.config.voice:
            from matcha.steps.voice_condition import Conditioning

            self._voice = Conditioning(self.config, ctx, placed="examples" in names or "voice" in names)
            self._query = _compile(self.config.voice_query) if self.config.voice_query else None

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

    def _render(self, rec: Record, extra: dict[str, Any] | None = None) -> tuple[str, str | None]:
        """The prompt and system prompt for ``rec``; a failure says which template it was."""
        texts: list[str] = []
        context = {**rec, **extra} if extra else rec
        for label, template in (("prompt", self._prompt), ("system", self._system)):
            try:
                texts.append(render(template, context) if template is not None else "")
            except TemplateError as exc:
                raise TemplateError(f"{label} template: {exc.message}", exc.hint) from exc
        return texts[0], texts[1] if self._system is not None else None

    def _topic(self, rec: Record) -> str:
        """What the examples are looked up with when ``voice_query`` is unset: the prompt without
        examples, or (a template that needs them) the record's text fields."""
        assert self._voice is not None
        try:
            return self._render(rec, self._voice.context([]))[0]
        except TemplateError:
            return " ".join(str(v) for k, v in rec.items() if k != "id" and isinstance(v, str))[:2000]

    def _conditioned(self, batch: list[Record], out: BatchOutcome) -> tuple[list[Record], list[str], set[str | None]]:
        """With ``voice``: each record's prompt with the nearest passages and the rules (see the module doc)."""
        assert self._voice is not None
        ready: list[Record] = []
        queries: list[str] = []
        for rec in batch:
            try:
                queries.append(render(self._query, rec) if self._query is not None else self._topic(rec))
                ready.append(rec)
            except TemplateError as exc:
                out.quarantined.append((rec, str(exc)[:500]))
        found = self._voice.nearest(queries)
        kept: list[Record] = []
        prompts: list[str] = []
        systems: set[str | None] = set()
        for rec, examples in zip(ready, found, strict=True):
            try:
                prompt, system = self._render(rec, self._voice.context(examples))
            except TemplateError as exc:
                out.quarantined.append((rec, str(exc)[:500]))
                continue
            prompts.append(self._voice.complete(prompt, examples))
            systems.add(system)
            if self.config.examples_field:
                rec[self.config.examples_field] = examples
            kept.append(rec)
        return kept, prompts, systems

    def process(self, batch: list[Record], ctx: StepContext) -> BatchOutcome:
        out = BatchOutcome()
        ready: list[Record] = []
        prompts: list[str] = []
        systems: set[str | None] = set()
        if self._voice is not None:
            ready, prompts, systems = self._conditioned(batch, out)
        else:
            for rec in batch:
                try:
                    prompt, system = self._render(rec)
                except TemplateError as exc:
                    out.quarantined.append((rec, str(exc)[:500]))
                    continue
                prompts.append(prompt)
                systems.add(system)
                ready.append(rec)
        if self._feedback:
            prompts = [prompt + feedback(rec) for prompt, rec in zip(prompts, ready, strict=True)]
        # one system prompt per batch keeps the cache key simple; per-record systems go one by one
        if len(systems) > 1 and len(batch) > 1:
            raise ValueError("system prompt differs between records")  # isolated record by record
        results = generate_cached(
            ctx, self._model, prompts, system=next(iter(systems), None), schema=self.config.schema_,
            params={"max_tokens": self.config.max_tokens, "temperature": self.config.temperature,
                    **({"stop": self.config.stop} if self.config.stop and self.config.schema_ is None else {})},
            concurrency=self.config.concurrency, accept=self._accept, retries=self.config.retries,
            salts=[attempt_salt(rec) for rec in ready])
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
