"""``filter`` and ``map``: small record transformations without writing a script."""

from __future__ import annotations

from typing import Any

from jinja2.sandbox import SandboxedEnvironment
from pydantic import Field, field_validator

from matcha.spec.conditions import compile_condition
from matcha.steps.base import BatchOutcome, Record, Step, StepConfig, StepContext, register_step


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
        env = SandboxedEnvironment()
        for key, tpl in v.items():
            try:
                env.parse(tpl)
            except Exception as exc:
                raise ValueError(f"template for '{key}' is invalid: {exc}") from exc
        return v


@register_step("map")
class MapStep(Step):
    Config = MapConfig

    def warm_up(self, ctx: StepContext) -> None:
        env = SandboxedEnvironment(autoescape=False)
        self._templates = {k: env.from_string(t) for k, t in self.config.set.items()}

    def process(self, batch: list[Record], ctx: StepContext) -> BatchOutcome:
        out: list[dict[str, Any]] = []
        for rec in batch:
            new = dict(rec)
            for old, name in self.config.rename.items():
                if old in new and old != "id":
                    new[name] = new.pop(old)
            for key in self.config.drop:
                if key != "id":
                    new.pop(key, None)
            for key, tpl in self._templates.items():
                new[key] = tpl.render(**rec)
            out.append(new)
        return BatchOutcome(out=out)
