"""Matcha: self-hosted multi-AI pipelines with a human approval gate.

The public API is small on purpose::

    from matcha import Pipeline, Run
    run = Pipeline.load("pipelines/sentiment.yaml").run()
    for item in run.pending():
        ...
    run.approve(all=True)

    from matcha import Voice
    voice = Voice.build("examples/site")           # a client's tone of voice, from its pages
    print(voice.score("Our new tea ...")[0].score)  # 0-100, with notes

Everything else is internal and may change.
"""

from matcha.errors import (
    ApprovalError,
    ConfigIssue,
    ConnectorError,
    EgressDenied,
    MatchaError,
    ModelError,
    ModelUnavailable,
    PipelineError,
    RunError,
    StepError,
    VoiceError,
)
from matcha.pipeline import Pipeline
from matcha.runtime.run import ReviewItem, Run
from matcha.steps.base import BatchOutcome, Step, StepConfig, StepContext, register_step
from matcha.voice import Voice, VoiceScore

__version__ = "0.1.0"

__all__ = [
    "ApprovalError",
    "BatchOutcome",
    "ConfigIssue",
    "ConnectorError",
    "EgressDenied",
    "MatchaError",
    "ModelError",
    "ModelUnavailable",
    "Pipeline",
    "PipelineError",
    "ReviewItem",
    "Run",
    "RunError",
    "Step",
    "StepConfig",
    "StepContext",
    "StepError",
    "Voice",
    "VoiceError",
    "VoiceScore",
    "__version__",
    "register_step",
]
