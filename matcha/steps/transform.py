"""``filter`` and ``map``: small record transformations without writing a script."""

from __future__ import annotations

from pydantic import Field, field_validator

from matcha.spec.conditions import compile_condition
from matcha.steps.base import BatchOutcome, Record, Step, StepConfig, StepContext, register_step
from matcha.templating import TemplateError, compile_template, render


class FilterConfig(StepConfig):
    condition: str = Field(description="Keep records for which this condition holds, e.g. \"score > 0.5\".")

    @field_validator("condition")
    @classmethod
    def _compiles(cls, v: str) -> str:
        compile_condition(v)
        return v


@register_step("filter")
class FilterStep(Step):
    Config = FilterConfig

    def warm_up(self, ctx: StepContext) -> None:
        self._pred = compile_condition(self.config.condition)

    def process(self, batch: list[Record], ctx: StepContext) -> BatchOutcome:
        out = BatchOutcome()
        for rec in batch:
            if self._pred(rec):
                out.out.append(rec)
            else:
                out.dropped.append((rec, f"filtered out by `{self.config.condition}`"))
        return out


class MapConfig(StepConfig):
    set: dict[str, str] = Field(default_factory=dict,
                                description="Fields to set from Jinja2 templates over the record, e.g. "
                                "{subject: 'Re: {{ title }}'}.")
    rename: dict[str, str] = Field(default_factory=dict, description="Fields to rename: {old: new}.")
    drop: list[str] = Field(default_factory=list, description="Fields to remove.")

    @field_validator("set")
    @classmethod
    def _templates(cls, v: dict[str, str]) -> dict[str, str]:
        for key, tpl in v.items():
            try:
                compile_template(tpl)
            except TemplateError as exc:
                raise ValueError(f"template for '{key}' is invalid: {exc}") from exc
        return v


@register_step("map")
class MapStep(Step):
    Config = MapConfig
    templated = ("set",)

    def warm_up(self, ctx: StepContext) -> None:
        self._templates = {k: compile_template(t) for k, t in self.config.set.items()}

    def _render(self, rec: Record) -> dict[str, str]:
        values: dict[str, str] = {}
        for key, tpl in self._templates.items():
            try:
                values[key] = render(tpl, rec)
            except TemplateError as exc:
                raise TemplateError(f"template for '{key}': {exc.message}", exc.hint) from exc
        return values

    def process(self, batch: list[Record], ctx: StepContext) -> BatchOutcome:
        out = BatchOutcome()
        for rec in batch:
            try:
                values = self._render(rec)
            except TemplateError as exc:
                out.quarantined.append((rec, str(exc)[:500]))
                continue
            new = dict(rec)
            for old, name in self.config.rename.items():
                if old in new and old != "id":
                    new[name] = new.pop(old)
            for key in self.config.drop:
                if key != "id":
                    new.pop(key, None)
            new.update(values)  # rendered from the record as it came in, before rename/drop
            out.out.append(new)
        return out
