"""The typed shape of a pipeline file (before per-step ``with:`` validation)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"


class SourceSpec(BaseModel):
    """Where records come from: a connection defined in ``connectors/NAME.yaml``."""

    model_config = ConfigDict(extra="forbid")
    connector: str = Field(description="Name of a source connection (file stem in connectors/).")
    id_field: str | None = Field(
        "id", description="Record field holding a stable id; null numbers records by their row."
    )
    limit: int | None = Field(None, ge=1, description="Read at most this many records.")


class RepeatSpec(BaseModel):
    """Write records again until they meet a condition (a bounded loop the executor owns)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str = Field(alias="from", pattern=ID_PATTERN,
                       description="First step of the loop (e.g. the generate step); the loop runs from it to this "
                       "step, each needing the one before.")
    until: str = Field(description="Condition a record must meet to leave the loop, e.g. \"voice_score >= 70\".")
    max_attempts: int = Field(3, ge=2, le=10, description="Attempts in all, the first included. A record still "
                              "failing `until` after the last one is flagged and goes on to review.")


class StepSpec(BaseModel):
    """One step of a pipeline."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    id: str = Field(pattern=ID_PATTERN, description="Unique step id (letters, digits, _ and -).")
    type: str = Field(description="Step type, e.g. script, approval, publish, embed, generate.")
    needs: list[str] | None = Field(
        None, description="Ids of the steps whose output this step reads. Default: the previous step."
    )
    with_: dict[str, Any] = Field(default_factory=dict, alias="with", description="The step type's own config.")
    when: str | None = Field(
        None,
        description="Condition on record fields, e.g. \"label == 'negative'\". "
        "Records that do not match are dropped from this branch.",
    )
    on_error: Literal["fail", "quarantine"] = Field(
        "fail", description="fail: stop the run on a bad record; quarantine: set it aside with its reason."
    )
    repeat: RepeatSpec | None = Field(
        None, description="Loop back: records failing `until` go again through the steps `from` .. this one, at "
        "most `max_attempts` times in all; every attempt is kept (`attempts`), the last failures are `flagged`."
    )

    @field_validator("needs", mode="before")
    @classmethod
    def _one_need(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class RaySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    address: str | None = Field(None, description="The Ray cluster to join (e.g. ray://head:10001 or HOST:6379); "
                                "default: $RAY_ADDRESS, else a local cluster started by the run.")
    actors: int | None = Field(None, ge=1, le=1024, description="Actors per step, each loading the step's model "
                               "once; default: one per CPU of the cluster (at most 16).")
    num_cpus: float = Field(1.0, gt=0, le=256, description="CPUs Ray reserves for each actor.")


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    executor: Literal["local", "ray"] = Field(
        "local", description="Where the batches of model and script steps run: in this process (local), or on "
        "Ray actors (ray; the run store, approval and publish stay here). $MATCHA_EXECUTOR or --executor overrides.")
    ray: RaySettings = Field(default_factory=RaySettings, description="The Ray executor's cluster and actors.")
    batch_size: int = Field(256, ge=1, le=100_000, description="Records per batch handed to a step.")
    column_batch_size: int = Field(4096, ge=1, le=1_000_000, description="Records per batch of a pass that reads "
                                   "a few fields a column at a time (dataset steps: cluster, describe_segments, "
                                   "report); larger batches cost less per record, memory grows with them.")


class PipelineSpec(BaseModel):
    """A whole pipeline file."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=ID_PATTERN, description="Pipeline name.")
    description: str = ""
    models: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Named models: {name: {provider: ..., model: ...}}."
    )
    source: SourceSpec | None = None
    settings: Settings = Field(default_factory=Settings)
    steps: list[StepSpec] = Field(min_length=1)
