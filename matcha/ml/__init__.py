"""Small machine-learning helpers on top of embeddings (numpy / scikit-learn only)."""

from matcha.ml.fewshot import (
    SENTIMENT_LABELS,
    FewShotClassifier,
    builtin_sentiment_examples,
    load_examples_csv,
    validate_examples,
)

__all__ = [
    "SENTIMENT_LABELS",
    "FewShotClassifier",
    "builtin_sentiment_examples",
    "load_examples_csv",
    "validate_examples",
]
