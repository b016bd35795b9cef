"""Small machine-learning helpers on top of embeddings (numpy / scikit-learn only)."""

from matcha.ml.fewshot import (
    SENTIMENT_LABELS,
    FewShotClassifier,
    builtin_sentiment_examples,
    embed_pooled,
    load_examples_csv,
    normalise_text,
    split_sentences,
    validate_examples,
)

__all__ = [
    "SENTIMENT_LABELS",
    "FewShotClassifier",
    "builtin_sentiment_examples",
    "embed_pooled",
    "load_examples_csv",
    "normalise_text",
    "split_sentences",
    "validate_examples",
]
