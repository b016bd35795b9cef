"""JSON Schema of pipeline files, for editors (``# yaml-language-server: $schema=...``).

Built from the same pydantic models that validate files: the step list gets one ``if/then`` per
registered step type so editors complete each type's ``with:`` fields, and likewise for providers.
"""

from __future__ import annotations

from typing import Any

from matcha.models.base import PROVIDERS
from matcha.spec.models import PipelineSpec
from matcha.steps.base import STEPS


def _inline(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    defs.update(schema.pop("$defs", {}))
    return schema


def pipeline_schema() -> dict[str, Any]:
    defs: dict[str, Any] = {}
    root = _inline(PipelineSpec.model_json_schema(by_alias=True, ref_template="#/$defs/{model}"), defs)
    step_def = defs["StepSpec"]
    step_def["properties"]["type"]["enum"] = STEPS.names()
    conditions = []
    for name in STEPS.names():
        cls = STEPS.get(name)
        assert cls is not None
        cfg = _inline(cls.Config.model_json_schema(ref_template="#/$defs/{model}"), defs)
        conditions.append({"if": {"properties": {"type": {"const": name}}, "required": ["type"]},
                           "then": {"properties": {"with": cfg}}})
    step_def["allOf"] = conditions
    model_variants = []
    for name in PROVIDERS.names():
        provider = PROVIDERS.get(name)
        assert provider is not None
        cfg_schema = _inline(provider.Config.model_json_schema(ref_template="#/$defs/{model}"), defs)
        model_variants.append({"if": {"properties": {"provider": {"const": name}}, "required": ["provider"]},
                               "then": cfg_schema})
    root["properties"]["models"]["additionalProperties"] = {
        "type": "object", "required": ["provider"],
        "properties": {"provider": {"enum": PROVIDERS.names()}}, "allOf": model_variants,
    }
    root["$defs"] = defs
    root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    root["title"] = "Matcha pipeline"
    return root
