"""``sentiment``: negative / neutral / positive with zero configuration.

A ``classify`` step with a built-in French + English example set (written for Matcha) on the
default embedder. Override ``labels`` and ``examples`` / ``examples_file`` to change the scheme,
and ``model`` to use a multilingual embedder (recommended for French copy in production; see
docs/sentiment-quality.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from matcha.ml.fewshot import SENTIMENT_LABELS, builtin_sentiment_examples
from matcha.steps.base import register_step
from matcha.steps.classify import Classifier, ClassifyConfig


class SentimentConfig(ClassifyConfig):
    method: Literal["examples", "llm"] = Field("examples", description="examples (default) or llm.")
    labels: list[str] | None = Field(list(SENTIMENT_LABELS), description="The labels.")
    output: str = Field("sentiment", description="Field receiving the label; the score goes to <output>_score.")
    instructions: str = Field("Classify the sentiment of the customer's text.",
                              description="Task description for method llm.")

    def _builtin(self) -> bool:
        return True


@register_step("sentiment")
class SentimentStep(Classifier):
    Config = SentimentConfig

    def examples(self, base_dir: Path) -> list[tuple[str, str]]:
        own = super().examples(base_dir)
        if own:
            return own
        # the built-in set restricted to the configured labels (e.g. labels: [negative, positive])
        wanted = set(self.config.labels or [])
        return [(t, label) for t, label in builtin_sentiment_examples() if label in wanted]
