"""FewShotClassifier, example-set validation and loading, text preparation for the embedder.

Unit tests use synthetic vectors; one slow test runs the real offline embedder on hand-written
sentences (none of them from an evaluation set).
"""

from __future__ import annotations

import csv
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from matcha.errors import PipelineError
from matcha.ml import (
    SENTIMENT_LABELS,
    FewShotClassifier,
    builtin_sentiment_examples,
    embed_pooled,
    fewshot,
    load_examples_csv,
    normalise_text,
    split_sentences,
    validate_examples,
)

REPO = Path(__file__).resolve().parents[2]
DEV_SETS = REPO.parent / "shared" / "data" / "sentiment"


def clusters(per_label: int, labels: Sequence[str] = ("a", "b", "c"), spread: float = 0.3, seed: int = 0):
    """Unit-norm vectors around one random centre per label, like sentence embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(labels), 32))
    X = np.concatenate([c + spread * rng.normal(size=(per_label, 32)) for c in centres])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = [label for label in labels for _ in range(per_label)]
    return X, y


# --- FewShotClassifier --------------------------------------------------------------------------


@pytest.mark.unit
def test_fit_predict_separable_clusters() -> None:
    X, y = clusters(20, labels=("positive", "negative", "neutral"))
    clf = FewShotClassifier().fit(X, y)
    assert clf.labels == ["negative", "neutral", "positive"]
    pred, score = clf.predict(X)
    assert pred == y
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(score, proba.max(axis=1))
    assert score.shape == (len(y),) and ((score > 1 / 3) & (score <= 1.0)).all()


@pytest.mark.unit
def test_two_labels() -> None:
    X, y = clusters(10, labels=("no", "yes"))
    pred, score = FewShotClassifier().fit(X, y).predict(X)
    assert pred == y
    assert ((score >= 0.5) & (score <= 1.0)).all()


@pytest.mark.unit
@pytest.mark.parametrize(("per_label", "calibrated"), [(5, False), (14, False), (15, True), (40, True)])
def test_calibration_only_with_enough_examples(per_label: int, calibrated: bool) -> None:
    X, y = clusters(per_label)
    assert FewShotClassifier().fit(X, y).calibrated is calibrated


@pytest.mark.unit
def test_calibration_keeps_the_predicted_label() -> None:
    if fewshot._calibration_method() != "temperature":
        pytest.skip("Platt scaling (scikit-learn < 1.8) may move the argmax")
    X, y = clusters(30, spread=1.5)
    calibrated = FewShotClassifier().fit(X, y)
    raw = FewShotClassifier(calibration_min_per_label=10_000).fit(X, y)
    assert calibrated.calibrated and not raw.calibrated
    assert calibrated.predict(X)[0] == raw.predict(X)[0]


@pytest.mark.unit
def test_calibrated_scores_match_accuracy_on_overlapping_classes() -> None:
    # A regularised LR on unit vectors is under-confident; calibrated scores should not be.
    X, y = clusters(300, spread=2.0, seed=1)
    order = np.random.default_rng(7).permutation(len(y))
    train, test = order[: len(y) // 2], order[len(y) // 2 :]
    clf = FewShotClassifier().fit(X[train], [y[i] for i in train])
    pred, score = clf.predict(X[test])
    accuracy = float(np.mean([p == y[i] for p, i in zip(pred, test, strict=True)]))
    assert 0.5 < accuracy < 0.98  # the task is genuinely uncertain
    assert abs(float(score.mean()) - accuracy) < 0.1


@pytest.mark.unit
def test_deterministic() -> None:
    X, y = clusters(20, spread=1.0)
    a = FewShotClassifier().fit(X, y).predict_proba(X)
    b = FewShotClassifier().fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


@pytest.mark.unit
def test_empty_input_predicts_nothing() -> None:
    X, y = clusters(5)
    pred, score = FewShotClassifier().fit(X, y).predict(np.zeros((0, 32)))
    assert pred == [] and score.shape == (0,)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("X", "y", "match"),
    [
        (np.ones((4, 3)), ["a"] * 4, "at least 2 labels; found 'a'"),
        (np.ones((4, 3)), ["a", "b"], "4 rows but y has 2 labels"),
        (np.ones(4), ["a", "b", "a", "b"], "2-D array"),
        (np.zeros((0, 3)), [], "X is empty"),
        (np.array([[0.0, np.nan], [1.0, 0.0]]), ["a", "b"], "NaN or infinite"),
    ],
)
def test_fit_errors(X: np.ndarray, y: list[str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FewShotClassifier().fit(X, y)


@pytest.mark.unit
def test_predict_errors() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        FewShotClassifier().predict(np.ones((1, 3)))
    X, y = clusters(5)
    with pytest.raises(ValueError, match="fitted on 32-d vectors; embed the texts with the same model"):
        FewShotClassifier().fit(X, y).predict(np.ones((1, 8)))


@pytest.mark.unit
@pytest.mark.parametrize(("kwargs", "match"), [({"C": 0}, "C must be > 0"), ({"calibration_folds": 1}, "folds")])
def test_bad_parameters(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FewShotClassifier(**kwargs)


# --- validate_examples --------------------------------------------------------------------------

LABELS = ["negative", "neutral", "positive"]
GOOD = [("great", "positive"), ("awful", "negative"), ("it is blue", "neutral")]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("examples", "labels", "min_per_label", "expected"),
    [
        (GOOD, LABELS, 1, []),
        (GOOD, None, 1, []),
        (
            [*GOOD, ("fine", "positive")],
            LABELS,
            2,
            [
                "label 'negative' has 1 example; it needs at least 2 (add 1 more)",
                "label 'neutral' has 1 example; it needs at least 2 (add 1 more)",
            ],
        ),
        (
            [("great", "positive"), ("awful", "negative")],
            LABELS,
            1,
            ["label 'neutral' has no examples; it needs at least 1 (add 1 more)"],
        ),
        (
            [*GOOD, ("superb", "postive")],
            LABELS,
            1,
            [
                "label 'postive' (example 4) is not one of the labels (negative, neutral, positive); "
                "did you mean 'positive'?"
            ],
        ),
        (
            [*GOOD, ("meh", "Spam")],
            LABELS,
            1,
            ["label 'Spam' (example 4) is not one of the labels (negative, neutral, positive)"],
        ),
        ([*GOOD, ("   ", "positive"), ("", "neutral")], LABELS, 1, ["empty text in examples 4, 5"]),
        (
            [*GOOD, ("meh", "mixed"), ("so-so", "mixed")],
            LABELS,
            1,
            ["label 'mixed' (examples 4, 5) is not one of the labels (negative, neutral, positive)"],
        ),
        (
            [*GOOD, ("Great ", "negative"), ("GREAT", "positive")],
            LABELS,
            1,
            ["text 'great' has conflicting labels: 'positive' (examples 1, 5) and 'negative' (example 4)"],
        ),
        ([*GOOD, ("great", "positive")], LABELS, 1, []),  # a plain duplicate is harmless
        ([("great", "positive")], None, 1, ["at least 2 distinct labels are needed; found 'positive'"]),
        ([], None, 1, ["at least 2 distinct labels are needed; found none"]),
    ],
)
def test_validate_examples(
    examples: list[tuple[str, str]], labels: list[str] | None, min_per_label: int, expected: list[str]
) -> None:
    assert validate_examples(examples, labels, min_per_label) == expected


@pytest.mark.unit
def test_validate_examples_shortens_long_texts_and_lists() -> None:
    text = "word " * 40
    examples = [(text, "positive")] * 7 + [(text, "negative")]
    [problem] = validate_examples(examples, ["positive", "negative"], 1)
    assert problem.startswith("text 'word word")
    assert "…' has conflicting labels" in problem
    assert "(examples 1, 2, 3, 4, 5, … (7 in all))" in problem


# --- load_examples_csv --------------------------------------------------------------------------


def _write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "examples.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.mark.unit
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("text,label\ngreat,positive\nawful,negative\n", [("great", "positive"), ("awful", "negative")]),
        ("label,lang,text\npositive,en,great\n", [("great", "positive")]),
        ("\ufefftext,label\r\ngreat,positive\r\n", [("great", "positive")]),
        ("Text;Label\nbof, pas terrible;negative\n", [("bof, pas terrible", "negative")]),
        ("text\tlabel\nnice\tpositive\n", [("nice", "positive")]),
        ('text,label\n"line one\nline two, with comma",neutral\n\n', [("line one\nline two, with comma", "neutral")]),
        ("text,label\n ,positive\n", [("", "positive")]),  # empty texts are validate_examples' job
    ],
)
def test_load_examples_csv(tmp_path: Path, content: str, expected: list[tuple[str, str]]) -> None:
    assert load_examples_csv(_write(tmp_path, content)) == expected


@pytest.mark.unit
@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("", "examples file is empty. The first line must name the columns"),
        ("text,label\n", "has a header but no examples"),
        ("text,sentiment\ngreat,positive\n", r":1:0: the header has no 'label' column \(found: text, sentiment\)"),
        ("words\ngreat\n", "the header has no 'text' and no 'label' column"),
        ("text,label\ngreat,positive\nawful\nok,\n", r":3:0: row has no label.*\n.*:4:0: row has no label"),
        (b"text,label\ngreat,positive\nnul,n\xe9gatif\n", r":3:0: the file is not UTF-8 text. Save it as UTF-8"),
    ],
)
def test_load_examples_csv_errors(tmp_path: Path, content: str | bytes, match: str) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(PipelineError, match=match) as info:
        load_examples_csv(path)
    assert str(info.value).startswith(str(path))


@pytest.mark.unit
def test_load_examples_csv_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"examples file not found\. Check the path"):
        load_examples_csv(tmp_path / "nope.csv")


# --- built-in examples --------------------------------------------------------------------------


def _builtin_rows() -> list[dict[str, str]]:
    text = resources.files("matcha").joinpath("data/sentiment_examples.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


@pytest.mark.unit
def test_builtin_examples_are_valid_and_balanced() -> None:
    examples = builtin_sentiment_examples()
    assert validate_examples(examples, list(SENTIMENT_LABELS), min_per_label=100) == []
    rows = _builtin_rows()
    assert [(r["text"], r["label"]) for r in rows] == examples
    per_lang_label = Counter((r["lang"], r["label"]) for r in rows)
    assert set(per_lang_label) == {(lang, label) for lang in ("en", "fr") for label in SENTIMENT_LABELS}
    assert min(per_lang_label.values()) >= 100
    labels = Counter(label for _, label in examples)
    assert max(labels.values()) / min(labels.values()) < 1.1
    texts = [" ".join(t.split()).casefold() for t, _ in examples]
    assert len(set(texts)) == len(texts)


@pytest.mark.unit
def test_builtin_examples_returns_a_fresh_list() -> None:
    builtin_sentiment_examples().clear()
    assert len(builtin_sentiment_examples()) > 300


@pytest.mark.unit
@pytest.mark.skipif(not DEV_SETS.is_dir(), reason="evaluation data not present")
def test_builtin_examples_share_no_text_with_the_evaluation_sets() -> None:
    ours = {normalise_text(t).casefold() for t, _ in builtin_sentiment_examples()}
    for path in sorted(DEV_SETS.glob("*/dev.csv")):
        with path.open(encoding="utf-8", newline="") as fh:
            theirs = {normalise_text(row["text"]).casefold() for row in csv.DictReader(fh)}
        assert not ours & theirs, path.parent.name


@pytest.mark.unit
def test_module_does_not_import_an_embedder() -> None:
    code = "import sys, matcha.ml; print(sorted(m for m in ('fastembed', 'onnxruntime') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- preparing texts ----------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@United thanks!!", "@user thanks!!"),
        ("see https://t.co/Ab1 and www.example.com/x now", "see http and http now"),
        ("mail me at a@b.com", "mail me at a@b.com"),
        ("  trop   bien \n ce film ", "trop bien ce film"),
        ("C'est NUL", "C'est NUL"),
        ("trop bien ❤️ !", "trop bien love !"),
        ("merci🙏🙏", "merci thanks thanks"),
        ("@SkyJet 😡 again", "@user angry again"),
        ("thanks :) and <3", "thanks happy and love"),
        ("http://x.io/:) i<3u ✈️", "http i<3u ✈"),
    ],
)
def test_normalise_text(text: str, expected: str) -> None:
    assert normalise_text(text) == expected


@pytest.mark.unit
def test_split_sentences() -> None:
    short = "Fine. Really."
    assert split_sentences(short) == [short]
    long = (
        "la première partie est vraiment réussie et bien rythmée . bof . "
        "la seconde traîne en longueur et la fin est décevante ! voilà"
    )
    assert split_sentences(long, split_over=50) == [
        "la première partie est vraiment réussie et bien rythmée . bof .",
        "la seconde traîne en longueur et la fin est décevante ! voilà",
    ]


@pytest.mark.unit
def test_embed_pooled_averages_sentences_in_one_call() -> None:
    calls: list[list[str]] = []
    vocab = {"@user": 0, "good": 1, "bad": 2}

    def embed(texts: Sequence[str]) -> np.ndarray:
        calls.append(list(texts))
        out = np.zeros((len(texts), 3), dtype=np.float32)
        for i, t in enumerate(texts):
            for word, j in vocab.items():
                out[i, j] = t.count(word)
        return out

    first, second = " ".join(["good"] * 10) + ".", " ".join(["bad"] * 12) + "."
    X = embed_pooled(embed, ["@Alice good", f"{first}  {second}", "bad"], split_over=50)
    assert calls == [["@user good", first, second, "bad"]]
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(X[1], [0, 1 / np.sqrt(2), 1 / np.sqrt(2)], rtol=1e-6)
    assert embed_pooled(embed, []).shape[0] == 0


# --- real embedder ------------------------------------------------------------------------------

# Hand-written for this test; none is in the built-in examples or in an evaluation set.
OBVIOUS = [
    ("I absolutely love these running shoes, they are so comfortable!", "positive"),
    ("Fantastic service, the staff were friendly and really helpful.", "positive"),
    ("This is the worst laptop I have ever bought, it broke within a week.", "negative"),
    ("Horrible food and a very rude waiter. Avoid.", "negative"),
    ("Je suis ravie de cet aspirateur, il est excellent !", "positive"),
    ("Un film magnifique, j'ai adoré du début à la fin.", "positive"),
    ("Quelle horreur, ce téléphone est une vraie catastrophe.", "negative"),
    ("Service nul et livreur désagréable, je suis très déçu.", "negative"),
    ("@PizzaPronto best pizza in town 😍🔥", "positive"),
    ("@TelecomPlus encore une coupure ce soir 😡", "negative"),
]


@pytest.mark.slow
def test_real_embedder_classifies_obvious_sentences() -> None:
    from matcha.models.onnx_provider import OnnxEmbedProvider

    embedder = OnnxEmbedProvider("embedder", OnnxEmbedProvider.Config())  # the offline default
    examples = builtin_sentiment_examples()
    assert not {t for t, _ in OBVIOUS} & {t for t, _ in examples}
    clf = FewShotClassifier().fit(embed_pooled(embedder.embed, [t for t, _ in examples]), [lb for _, lb in examples])
    texts = [t for t, _ in OBVIOUS] + ["What time does the pharmacy close on Saturday?", "Le colis part demain."]
    pred, score = clf.predict(embed_pooled(embedder.embed, texts))
    assert pred[: len(OBVIOUS)] == [label for _, label in OBVIOUS]
    assert len(set(pred)) == 3, pred
    assert ((score > 0) & (score <= 1)).all()
