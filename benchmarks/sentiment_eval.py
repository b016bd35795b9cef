"""Zero-configuration sentiment quality on the labelled dev sets.

Fits :class:`matcha.ml.FewShotClassifier` on the built-in examples only (nothing from the dev
sets), embeds with the offline default embedder (USE multilingual v3, ONNX; ``--provider fastembed``
for the previous default all-MiniLM-L6-v2 int8) and reports,
per dev set: macro-F1, accuracy and the distribution of predicted labels.

The classifier always predicts among the three labels (negative / neutral / positive), as it does
in a pipeline. Headline macro-F1 = sklearn ``f1_score(average="macro")`` over the labels present in
the set; on a two-label set a "neutral" prediction therefore counts as a miss. ``F1 2-way`` is the
same score when the prediction is restricted to the labels present (argmax over those columns): it
is what a step configured with only those labels would get.

``CV on dev`` is a reference ceiling, NOT the zero-config number: 5-fold cross-validation of the
same classifier trained on the dev set itself.

    .venv/bin/python benchmarks/sentiment_eval.py [--data-dir DIR] [--examples CSV] [--C 1.0]
        [--split-over 150] [--no-normalise] [--provider onnx|fastembed] [--model NAME]

The datasets are not part of the repository (see docs/sentiment-quality.md for how to get them).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold

from matcha.errors import MatchaError
from matcha.ml import (
    SENTIMENT_LABELS,
    FewShotClassifier,
    builtin_sentiment_examples,
    embed_pooled,
    load_examples_csv,
)
from matcha.models.base import PROVIDERS, Embedder

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "sentiment"


@dataclass
class Result:
    name: str
    n: int
    present: list[str]
    f1: float
    f1_ci: tuple[float, float]
    f1_restricted: float | None
    accuracy: float
    mean_score: float
    predicted: Counter[str]
    cv_f1: float


def read_dev(path: Path) -> tuple[list[str], list[str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [r["text"] for r in rows], [r["label"] for r in rows]


def cross_validated_f1(X: np.ndarray, y: list[str], C: float) -> float:
    """5-fold CV macro-F1 of the classifier trained on the dev set itself (reference only)."""
    labels = np.asarray(y, dtype=object)
    pred = np.empty(len(y), dtype=object)
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(X, labels):
        pred[test] = FewShotClassifier(C=C).fit(X[train], list(labels[train])).predict(X[test])[0]
    return float(f1_score(labels, pred, average="macro"))


def bootstrap_ci(y: list[str], pred: list[str], labels: list[str], rounds: int = 1000) -> tuple[float, float]:
    """95% percentile interval of macro-F1 over resampled dev sets (how much the set size allows)."""
    rng = np.random.default_rng(0)
    y_arr, pred_arr = np.asarray(y, dtype=object), np.asarray(pred, dtype=object)
    scores = []
    for _ in range(rounds):
        idx = rng.integers(0, len(y), len(y))
        scores.append(f1_score(y_arr[idx], pred_arr[idx], labels=labels, average="macro", zero_division=0))
    low, high = np.percentile(scores, [2.5, 97.5])
    return float(low), float(high)


def evaluate(name: str, X: np.ndarray, y: list[str], clf: FewShotClassifier, C: float) -> Result:
    present = sorted(set(y))
    proba = clf.predict_proba(X)
    pred, score = clf.predict(X)
    f1 = float(f1_score(y, pred, labels=present, average="macro", zero_division=0))
    restricted = None
    if len(present) < len(clf.labels):
        cols = [clf.labels.index(label) for label in present]
        pred2 = [present[i] for i in proba[:, cols].argmax(axis=1)]
        restricted = float(f1_score(y, pred2, labels=present, average="macro", zero_division=0))
    return Result(
        name=name,
        n=len(y),
        present=present,
        f1=f1,
        f1_ci=bootstrap_ci(y, pred, present),
        f1_restricted=restricted,
        accuracy=float(accuracy_score(y, pred)),
        mean_score=float(score.mean()),
        predicted=Counter(pred),
        cv_f1=cross_validated_f1(X, y, C),
    )


def print_table(results: list[Result]) -> None:
    head = f"{'dev set':<28} {'n':>4} {'labels':>6} {'macro-F1':>8} {'95% CI':>11} {'F1 2-way':>8} {'acc':>6}"
    head += f" {'score':>6}  {'predicted neg/neu/pos':<22} {'CV on dev*':>10}"
    print(head)
    print("-" * len(head))
    for r in results:
        dist = "/".join(str(r.predicted.get(label, 0)) for label in SENTIMENT_LABELS)
        two_way = f"{r.f1_restricted:.3f}" if r.f1_restricted is not None else "-"
        print(
            f"{r.name:<28} {r.n:>4} {len(r.present):>6} {r.f1:>8.3f} {r.f1_ci[0]:>5.2f}-{r.f1_ci[1]:.2f}"
            f" {two_way:>8} {r.accuracy:>6.3f}"
            f" {r.mean_score:>6.3f}  {dist:<22} {r.cv_f1:>10.3f}"
        )
    print()
    print("macro-F1: zero-config headline, 3-label prediction, averaged over the labels present in the set.")
    print("95% CI: bootstrap interval of macro-F1 (1000 resamples of the dev set).")
    print("F1 2-way: prediction restricted to the labels present (two-label sets only).")
    print("score: mean calibrated score of the predicted label (compare with acc).")
    print("* CV on dev: 5-fold CV trained ON the dev set; a reference ceiling, not the zero-config number.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="folder of <set>/dev.csv")
    parser.add_argument("--examples", type=Path, help="examples CSV (default: the built-in set)")
    parser.add_argument("--C", type=float, default=1.0, help="inverse regularisation of the classifier")
    parser.add_argument("--split-over", type=int, default=150, help="average sentence vectors of longer texts (0: off)")
    parser.add_argument("--no-normalise", action="store_true", help="keep handles, links and emoji as they are")
    parser.add_argument("--provider", default="onnx", choices=["onnx", "fastembed"],
                        help="onnx: the offline default (USE multilingual v3); fastembed: all-MiniLM-L6-v2 (the "
                             "previous default) or --model")
    parser.add_argument("--model", help="another model of the provider, e.g. "
                                         "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2")
    args = parser.parse_args(argv)

    sets = sorted(args.data_dir.glob("*/dev.csv"))
    if not sets:
        print(
            f"No <set>/dev.csv under {args.data_dir}; see docs/sentiment-quality.md to get the data",
            file=sys.stderr,
        )
        return 2
    examples = load_examples_csv(args.examples) if args.examples else builtin_sentiment_examples()
    cls = PROVIDERS.get(args.provider)
    assert cls is not None
    embedder = cls("embedder", cls.Config.model_validate({"provider": args.provider,
                                                          **({"model": args.model} if args.model else {})}))
    assert isinstance(embedder, Embedder)

    def embed(texts: list[str]) -> np.ndarray:
        # The same preparation for examples and dev texts, as the sentiment step does.
        return embed_pooled(embedder.embed, texts, split_over=args.split_over, normalise=not args.no_normalise)

    started = time.perf_counter()
    clf = FewShotClassifier(C=args.C).fit(embed([t for t, _ in examples]), [label for _, label in examples])
    counts = Counter(label for _, label in examples)
    source = args.examples or "built-in"
    print(
        f"classifier: {len(examples)} examples ({source}) {dict(sorted(counts.items()))}, C={args.C}, "
        f"calibrated={clf.calibrated}\nembedder: {args.provider} {embedder.model_id}; "
        f"split_over={args.split_over}, normalise={not args.no_normalise}\n"
    )
    results = []
    for path in sets:
        texts, labels = read_dev(path)
        results.append(evaluate(path.parent.name, embed(texts), labels, clf, args.C))
    print_table(results)
    print(f"\n{sum(r.n for r in results)} texts in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except MatchaError as exc:  # model not available, bad examples file: a message, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
