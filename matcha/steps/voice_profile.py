"""``voice_profile``: learn a client's tone of voice from its pages (dataset scope).

The passages come from a ``pages`` connection (``pages: NAME``; the step's own input records then
pass through untouched: the products to write about, say) or, without ``pages``, from the step's
input records (``text``, ``page``, ``language`` fields, as a ``pages`` source reads them). ``fit``
builds the profile once (:mod:`matcha.ml.voice`): measures, distinctive words and phrases,
exemplars; with ``rules_model`` a generator writes a short list of do/don't rules from them; with
``connector`` the exemplars are embedded (``embed_model``) and indexed in that Qdrant collection, and
``generate`` with ``voice:`` retrieves its examples there. The profile is stored as an artifact
(``<step id>.yaml``: the file a person reads, edits and versions; ``matcha artifacts RUN``) and as the
step's state, with its sha256: ``generate`` and ``voice_score`` read it once as a side input
(``voice: <step id>``), never joined to each record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import structlog
from pydantic import Field

from matcha.errors import ConnectorError, VoiceError
from matcha.spec.paths import resolve_in_project
from matcha.steps.base import (
    BatchOutcome,
    DatasetView,
    LoadContext,
    Record,
    StaticIssue,
    Step,
    StepConfig,
    StepContext,
    register_step,
)
from matcha.steps.embed import DEFAULT_EMBEDDER
from matcha.steps.vector_index import COLLECTION
from matcha.voice import Voice

log = structlog.get_logger("matcha.step")

RULES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"do": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
                   "dont": {"type": "array", "items": {"type": "string"}, "maxItems": 5}},
    "required": ["do", "dont"],
}


class VoiceProfileConfig(StepConfig):
    pages: str | None = Field(None, description="A `pages` connection (connectors/NAME.yaml, kind: pages) whose "
                              "passages the profile is learned from. Unset: the step's input records are the "
                              "passages.")
    text: str = Field("text", description="Field holding a passage's text (input records only).")
    name: str | None = Field(None, description="The voice's name (default: the step id).")
    rules_model: str | None = Field(None, description="A generation model that writes a short list of do/don't "
                                    "rules from the profile (shown in the YAML for a person to edit).")
    connector: str | None = Field(None, description="A vectors connection (kind: qdrant) where the exemplar "
                                  "passages are indexed for `generate` to retrieve.")
    collection: str = Field("voice", pattern=COLLECTION, description="Collection of the exemplars.")
    embed_model: str = Field(DEFAULT_EMBEDDER, description="Embedding model for the exemplars and the topics "
                             "`generate` looks them up with.")


@register_step("voice_profile")
class VoiceProfileStep(Step):
    Config = VoiceProfileConfig
    scope = "dataset"
    produces = "voice"
    references: ClassVar[dict[str, str]] = {"pages": "connectors:source", "rules_model": "models:generate",
                                            "connector": "connectors:vectors", "embed_model": "models:embed"}

    def provides(self, kind: str) -> str:
        return self.id

    def model_names(self) -> list[str]:
        names = [self.config.rules_model] if self.config.rules_model else []
        return names + ([self.config.embed_model] if self.config.connector else [])

    def fit(self, data: DatasetView, ctx: StepContext) -> dict[str, Any]:
        cfg = self.config
        problems: list[str] = []
        rows = list(self._passages(data, ctx, problems))
        voice = Voice.from_passages(rows, name=cfg.name or self.id,
                                    progress=lambda stage, done, total: ctx.progress(ctx.step_id, done, total))
        profile = voice.profile
        if cfg.rules_model:
            profile.rules = _rules(voice, ctx, cfg.rules_model)
        if cfg.connector:
            profile.index = _index(voice, ctx, cfg)
        voice = Voice(profile)
        artifact = ctx.save_artifact(f"{self.id}.yaml", voice.text.encode("utf-8"), "application/yaml")
        ctx.store.add_step_extra(ctx.run_id, ctx.step_id, {
            "pages": profile.built.get("pages"), "passages": len(profile.exemplars), "profile": voice.hash[:12],
            "pages_unreadable": len(problems)}, replace=True)
        for p in problems:
            log.warning("page left out of the voice profile", step=self.id, problem=p)
        return {"yaml": voice.text, "hash": voice.hash, "artifact": artifact.name}

    def _passages(self, data: DatasetView, ctx: StepContext, problems: list[str]) -> Any:
        if self.config.pages:
            conn = ctx.connectors(self.config.pages)
            for row in conn.read():  # type: ignore[attr-defined]
                if row.error:
                    problems.append(row.error)
                elif row.data:
                    yield row.data
            return
        field = self.config.text
        for batch in data.batches(fields=[field, "page", "language"]):
            for rec in batch:
                yield {"id": rec["id"], "page": rec.get("page") or rec["id"], "text": rec.get(field) or "",
                       "language": rec.get("language")}

    def process(self, batch: list[Record], ctx: StepContext) -> BatchOutcome:
        return BatchOutcome(out=batch)


def _rules(voice: Voice, ctx: StepContext, model_name: str) -> dict[str, list[str]]:
    """Do/don't rules written by a generator from the profile's summary and a few exemplars (cached:
    a resumed run does not ask again). An unusable answer leaves the rules empty, with a warning."""
    from matcha.models.base import Generator
    from matcha.steps.modelcalls import generate_cached

    model = ctx.models(model_name)
    assert isinstance(model, Generator)
    p = voice.profile
    samples = "\n\n".join(f"---\n{e.text}" for e in p.exemplars[:3])
    prompt = (f"These passages show the tone of voice of '{p.name}'. Style measured: {p.summary}. Words it uses "
              f"often: {', '.join(p.vocabulary[:12])}.\n\n{samples}\n---\n\nWrite up to 4 short rules a copywriter "
              "must follow to write in this voice (`do`) and up to 4 things to avoid (`dont`). Answer in JSON.")
    (result,) = generate_cached(ctx, model, [prompt], system=None, schema=RULES_SCHEMA,
                                params={"max_tokens": 300, "temperature": 0.2}, concurrency=1, retries=2,
                                accept=_json_rules)
    if isinstance(result, BaseException):
        log.warning("no do/don't rules: the model's answer was not usable", model=model_name, error=str(result))
        return {"do": [], "dont": []}
    answer = json.loads(result)
    return {k: [str(r).strip() for r in answer.get(k, []) if str(r).strip()][:5] for k in ("do", "dont")}


def _json_rules(text: str) -> str | None:
    try:
        value = json.loads(text)
    except ValueError:
        return "not JSON"
    return None if isinstance(value, dict) and isinstance(value.get("do"), list) else "no `do` list"


def _index(voice: Voice, ctx: StepContext, cfg: VoiceProfileConfig) -> dict[str, Any]:
    """Embed the exemplars and upsert them in the collection (point ids from passage ids: a rerun
    overwrites). Returns the profile's ``index`` section."""
    from matcha.connectors.qdrant.store import VectorConnector
    from matcha.models.base import Embedder
    from matcha.steps.modelcalls import embed_cached

    model = ctx.models(cfg.embed_model)
    assert isinstance(model, Embedder)
    exemplars = voice.profile.exemplars
    vectors, _keys, _where = embed_cached(ctx, model, [e.text for e in exemplars])
    conn = ctx.connectors(str(cfg.connector))
    if not isinstance(conn, VectorConnector):
        raise ConnectorError(f"connection '{cfg.connector}' is not a vectors connection (kind: qdrant)")
    key = voice.profile.key
    store = conn.open()
    try:
        # points are tagged with the exemplars' digest and searched with it: profiles sharing a collection
        # (or an older profile's passages) never answer for this one
        store.ensure_collection(cfg.collection, int(vectors.shape[1]), "cosine")
        store.upsert(cfg.collection, [f"{key}:{e.id}" for e in exemplars], vectors,
                     [{"text": e.text, "page": e.page, "passage": e.id, "voice": key} for e in exemplars])
        store.ensure_payload_index(cfg.collection, "voice", "keyword")
        store.optimize(cfg.collection)
    finally:
        store.close()
    return {"connector": cfg.connector, "collection": cfg.collection, "model": cfg.embed_model, "voice": key}


# -- what generate and voice_score share --------------------------------------------------------------

def is_profile_file(ref: str) -> bool:
    return ref.lower().endswith((".yaml", ".yml"))


def check_voice_ref(ref: str | None, ctx: LoadContext, where: str = "voice") -> list[StaticIssue]:
    """Load-time check of a ``voice:`` that names a profile file (a step id is checked as a side input)."""
    if not ref or not is_profile_file(ref):
        return []
    try:
        Voice.load(resolve_in_project(ctx.base_dir, ref))
    except (VoiceError, ValueError, OSError) as exc:
        return [StaticIssue((where,), str(exc), "Name a profile written by `matcha voice build PAGES -o FILE` "
                            "(relative to the project root), or the id of a `voice_profile` step upstream")]
    return []


def load_voice(ref: str, ctx: StepContext, base_dir: Path | None = None) -> Voice:
    """The voice ``ref`` names: a ``voice_profile`` step upstream (its saved state) or a profile file."""
    if is_profile_file(ref):
        return Voice.load(resolve_in_project(base_dir or ctx.base_dir, ref))
    state = ctx.state_of(ref)
    if not state or "yaml" not in state:
        raise VoiceError(f"step '{ref}' has no voice profile: `voice` must name a voice_profile step upstream "
                         "of this one, or a profile file (.yaml)")
    return Voice.from_yaml(str(state["yaml"]), f"the profile of step '{ref}'")
