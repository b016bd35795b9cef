"""Few-shot text classification on sentence embeddings.

The classifier works on vectors only: the step that uses it embeds the example texts and the
incoming texts with the pipeline's embedder (any :class:`~matcha.models.base.Embedder`) and passes
the arrays in. Keeping the embedder out of this module keeps it pure numpy/scikit-learn, fast to
test with synthetic vectors, and independent of which model a pipeline configures.

Examples are ``(text, label)`` pairs: from a user CSV (:func:`load_examples_csv`) or the built-in
English + French sentiment set (:func:`builtin_sentiment_examples`). :func:`validate_examples`
lists what is wrong with a set before anything is embedded, so a pipeline fails at load time with
every problem at once.
"""

from __future__ import annotations

import csv
import difflib
import functools
import io
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Self

import numpy as np

from matcha.errors import ConfigIssue, PipelineError

SENTIMENT_LABELS: tuple[str, ...] = ("negative", "neutral", "positive")

_BUILTIN_SENTIMENT = "data/sentiment_examples.csv"

# Temperature scaling (scikit-learn >= 1.8) divides the logits by one fitted scalar: it fixes the
# over/under-confidence of a regularised logistic regression without ever changing which label
# wins. Older scikit-learn only has Platt scaling ("sigmoid"), which is one-vs-rest and can move
# the argmax; it is the closest fallback.
if TYPE_CHECKING:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression


def _calibration_method() -> str:
    # scikit-learn is imported when a classifier is fitted, not when pipelines are validated (~1 s)
    import sklearn

    version = tuple(int(p) for p in re.findall(r"\d+", sklearn.__version__)[:2])
    return "temperature" if version >= (1, 8) else "sigmoid"


class FewShotClassifier:
    """Logistic regression on embedding vectors, with calibrated scores when data allows.

    ``C`` is the inverse regularisation strength. On unit-length sentence vectors the default (1.0)
    is strong regularisation, which suits a few hundred examples; on the sentiment benchmark any
    value from 0.5 to 2 scored the same within noise (docs/sentiment-quality.md).

    Scores are calibrated by cross-validated temperature scaling once every label has at least
    ``calibration_min_per_label`` examples; below that the logistic regression's own probabilities
    are returned (see :meth:`fit`). :attr:`calibrated` says which one applies.
    """

    def __init__(
        self,
        *,
        C: float = 1.0,
        calibration_min_per_label: int = 15,
        calibration_folds: int = 5,
        random_state: int = 0,
    ):
        if C <= 0:
            raise ValueError(f"C must be > 0, got {C}")
        if calibration_folds < 2:
            raise ValueError(f"calibration_folds must be >= 2, got {calibration_folds}")
        self.C = C
        self.calibration_min_per_label = max(calibration_min_per_label, calibration_folds)
        self.calibration_folds = calibration_folds
        self.random_state = random_state
        self._model: LogisticRegression | CalibratedClassifierCV | None = None
        self._labels: list[str] = []
        self._dim = 0
        self._calibrated = False

    @property
    def labels(self) -> list[str]:
        """The labels seen by :meth:`fit`, sorted; also the column order of :meth:`predict_proba`."""
        return list(self._labels)

    @property
    def calibrated(self) -> bool:
        """True when scores come from cross-validated calibration, False for raw LR probabilities."""
        return self._calibrated

    def fit(self, X: np.ndarray, y: Sequence[str]) -> Self:
        """Fit on embedding rows ``X`` (n, dim) and their labels ``y``. Needs at least two labels."""
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold

        X = _as_matrix(X)
        labels = [str(label) for label in y]
        if len(labels) != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but y has {len(labels)} labels; they must match")
        counts = Counter(labels)
        if len(counts) < 2:
            found = ", ".join(repr(k) for k in counts) or "none"
            raise ValueError(f"FewShotClassifier needs examples of at least 2 labels; found {found}")
        base = LogisticRegression(C=self.C, class_weight="balanced", max_iter=2000, random_state=self.random_state)
        # Calibration needs held-out scores for every label in every fold. With fewer than about
        # 15 examples per label the 5 fold models (each missing a fifth of an already tiny set)
        # differ too much from the final model and the fitted temperature is noise, so the LR's
        # own probabilities are the more honest score there. ensemble=False keeps ONE model
        # trained on all examples (every example counts in few-shot) and uses the folds only to
        # get out-of-fold logits for fitting the temperature.
        self._calibrated = min(counts.values()) >= self.calibration_min_per_label
        model: LogisticRegression | CalibratedClassifierCV
        if self._calibrated:
            folds = StratifiedKFold(self.calibration_folds, shuffle=True, random_state=self.random_state)
            model = CalibratedClassifierCV(base, method=_calibration_method(), cv=folds, ensemble=False)
        else:
            model = base
        model.fit(X, np.asarray(labels, dtype=object))
        self._model = model
        self._labels = [str(c) for c in model.classes_]
        self._dim = X.shape[1]
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probabilities, shape (n, len(labels)), columns in :attr:`labels` order."""
        if self._model is None:
            raise RuntimeError("FewShotClassifier is not fitted; call fit(X, y) first")
        X = _as_matrix(X, allow_empty=True)
        if X.shape[0] == 0:
            return np.zeros((0, len(self._labels)))
        if X.shape[1] != self._dim:
            raise ValueError(
                f"X has {X.shape[1]} columns but the classifier was fitted on {self._dim}-d vectors; "
                "embed the texts with the same model as the examples"
            )
        return np.asarray(self._model.predict_proba(X), dtype=np.float64)

    def predict(self, X: np.ndarray) -> tuple[list[str], np.ndarray]:
        """The most probable label of each row and its probability (the row's score)."""
        proba = self.predict_proba(X)
        best = proba.argmax(axis=1)
        return [self._labels[i] for i in best], proba[np.arange(len(best)), best]


def _as_matrix(X: np.ndarray, *, allow_empty: bool = False) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array (n_texts, dim); got shape {X.shape}")
    if X.shape[0] == 0 and not allow_empty:
        raise ValueError("X is empty; fit needs at least one example per label")
    if not np.isfinite(X).all():
        raise ValueError("X contains NaN or infinite values; check the embedder output")
    return X


# --- preparing texts for the embedder ----------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
_URL = re.compile(r"https?://\S+|www\.\S+")
_MENTION = re.compile(r"(?<!\w)@\w+")

# Some embedders have no emoji in their vocabulary (all-MiniLM-L6-v2 reads each as [UNK], so 😍
# and 😡 look the same): the common sentiment-bearing ones, and ASCII smileys, are spelled out in
# English. The multilingual default reads both forms; the words measured 0.005 better there too.
_EMOJI_WORDS = {
    "😍": "love", "🥰": "love", "❤": "love", "💕": "love", "💖": "love", "💚": "love", "💙": "love",
    "😊": "happy", "🙂": "happy", "☺": "happy", "😀": "happy", "😃": "happy", "😄": "happy",
    "😁": "happy", "😎": "cool", "😂": "laughing", "🤣": "laughing", "😆": "laughing",
    "👍": "good", "👌": "good", "💯": "perfect", "🔥": "awesome", "🙌": "great", "👏": "bravo",
    "🎉": "celebrate", "🥳": "celebrate", "🙏": "thanks", "😋": "delicious", "💪": "strong",
    "👎": "bad", "😡": "angry", "😠": "angry", "🤬": "furious", "😤": "annoyed", "😒": "annoyed",
    "🙄": "annoyed", "😑": "annoyed", "😢": "sad", "😭": "crying", "😞": "sad", "😔": "sad",
    "☹": "sad", "🙁": "sad", "😩": "fed up", "😫": "fed up", "🤮": "disgusting", "🤢": "disgusting",
    "💩": "crap", "😱": "shocked", "😬": "awkward", "🤦": "facepalm", "😐": "meh",
}  # fmt: skip
_EMOJI = re.compile("|".join(map(re.escape, sorted(_EMOJI_WORDS, key=len, reverse=True))))
_SMILEYS = {":)": "happy", ":-)": "happy", ":D": "happy", ";)": "wink", ":(": "sad", ":-(": "sad", "<3": "love"}
_SMILEY = re.compile(r"(?<![\w:/])(" + "|".join(map(re.escape, _SMILEYS)) + r")(?!\w)")


def normalise_text(text: str) -> str:
    """Prepare a text for the embedder: mask links and handles, spell out emoji.

    Links become ``http`` and @handles ``@user``: brand handles (``@united``) and link slugs carry
    no sentiment but pull a tweet towards whatever examples share them (the masks are the
    conventions of public tweet corpora). Common emoji and smileys become a word (``😡`` ->
    ``angry``). Whitespace is collapsed; case is left alone (the embedders lower-case on their own).
    """
    text = _MENTION.sub("@user", _URL.sub("http", text)).replace("\ufe0f", "")  # emoji variation selector
    text = _EMOJI.sub(lambda m: f" {_EMOJI_WORDS[m.group()]} ", text)
    text = _SMILEY.sub(lambda m: f" {_SMILEYS[m.group()]} ", text)
    return " ".join(text.split())


def split_sentences(text: str, *, split_over: int = 150, min_chars: int = 40) -> list[str]:
    """``[text]`` if it is at most ``split_over`` characters, else its sentences.

    A sentence shorter than ``min_chars`` is joined to its neighbour, so "Bof ." or a stray "!"
    does not get a vote of its own. Works on tokenised text ("c' est nul .") as well.
    """
    if len(text) <= split_over:
        return [text]
    parts: list[str] = []
    for part in _SENTENCE_END.split(text.strip()):
        if parts and (len(part) < min_chars or len(parts[-1]) < min_chars):
            parts[-1] = f"{parts[-1]} {part}"
        else:
            parts.append(part)
    return [p for p in parts if p.strip()] or [text]


def embed_pooled(
    embed: Callable[[Sequence[str]], np.ndarray],
    texts: Sequence[str],
    *,
    split_over: int = 150,
    normalise: bool = True,
) -> np.ndarray:
    """Embed texts for :class:`FewShotClassifier`: one L2-normalised row per text.

    Use it for the examples and for the texts to classify alike. Each text goes through
    :func:`normalise_text` (unless ``normalise=False``); a text longer than ``split_over``
    characters (0: never) is split into sentences whose vectors are averaged. Mean-pooled sentence
    embedders dilute a verdict spread over a long review, and all-MiniLM-L6-v2 was trained on short
    inputs, so one vector per sentence keeps long reviews close to the short examples (+0.05
    macro-F1 on long French TV reviews, no change on short texts). All pieces go to ``embed`` in
    one call.
    """
    pieces: list[str] = []
    owner: list[int] = []
    for i, text in enumerate(texts):
        text = normalise_text(text) if normalise else text
        parts = split_sentences(text, split_over=split_over) if split_over > 0 else [text]
        pieces.extend(parts)
        owner.extend([i] * len(parts))
    vectors = np.asarray(embed(pieces), dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(pieces):
        raise ValueError(f"embed returned an array of shape {vectors.shape} for {len(pieces)} texts")
    # Normalise each piece first so that every sentence weighs the same whatever the embedder.
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    pooled = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
    np.add.at(pooled, np.asarray(owner, dtype=np.intp), vectors)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return pooled / np.maximum(norms, 1e-12)


# --- example sets -------------------------------------------------------------------------------


def _norm_text(text: str) -> str:
    # Embedders in use lower-case their input, so texts differing only in case or spacing are
    # the same example to the classifier.
    return " ".join(text.split()).casefold()


def _short(text: str, width: int = 50) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _numbers(indexes: list[int]) -> str:
    shown = ", ".join(str(i) for i in indexes[:5])
    more = f", … ({len(indexes)} in all)" if len(indexes) > 5 else ""
    return f"example{'s' if len(indexes) > 1 else ''} {shown}{more}"


def validate_examples(examples: list[tuple[str, str]], labels: list[str] | None, min_per_label: int) -> list[str]:
    """Human-readable problems with an example set; empty when it is usable.

    ``labels`` are the labels the step may output (``None``: whatever the examples use, at least
    two). Examples are numbered from 1 in list order (for a CSV: the n-th data row); problems of
    the same kind are grouped, so a wrong label used 300 times is one line. Checks: empty texts,
    labels outside ``labels``, labels with fewer than ``min_per_label`` examples, and the same
    text given conflicting labels.
    """
    allowed = list(labels) if labels is not None else None
    empty: list[int] = []
    unknown: dict[str, list[int]] = defaultdict(list)
    counts: Counter[str] = Counter()
    by_text: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for number, (text, label) in enumerate(examples, start=1):
        if not text.strip():
            empty.append(number)
        elif allowed is not None and label not in allowed:
            unknown[label].append(number)
        else:
            counts[label] += 1
            by_text[_norm_text(text)][label].append(number)

    problems = [f"empty text in {_numbers(empty)}"] if empty else []
    problems += [f"{_unknown_label(label, allowed or [], numbers)}" for label, numbers in unknown.items()]
    wanted = allowed if allowed is not None else sorted(counts)
    if allowed is None and len(wanted) < 2:
        found = ", ".join(repr(k) for k in wanted) or "none"
        problems.append(f"at least 2 distinct labels are needed; found {found}")
    for label in wanted:
        n = counts[label]
        if n < min_per_label:
            have = "no examples" if n == 0 else f"{n} example{'s' if n > 1 else ''}"
            problems.append(
                f"label '{label}' has {have}; it needs at least {min_per_label} (add {min_per_label - n} more)"
            )
    for seen in by_text.values():
        if len(seen) > 1:
            first = min(i for numbers in seen.values() for i in numbers)
            text = _short(examples[first - 1][0])
            parts = [f"'{label}' ({_numbers(numbers)})" for label, numbers in seen.items()]
            problems.append(f"text '{text}' has conflicting labels: {' and '.join(parts)}")
    return problems


def _unknown_label(label: str, allowed: list[str], numbers: list[int]) -> str:
    message = f"label '{label}' ({_numbers(numbers)}) is not one of the labels ({', '.join(allowed)})"
    close = difflib.get_close_matches(label, allowed, n=1)
    if not close:
        close = [a for a in allowed if a.casefold() == label.strip().casefold()]
    return message + (f"; did you mean '{close[0]}'?" if close else "")


def load_examples_csv(path: str | Path) -> list[tuple[str, str]]:
    """Read ``(text, label)`` pairs from a UTF-8 CSV with a header naming ``text`` and ``label``.

    Other columns are ignored. A ``;`` or tab separator is accepted when the header uses it
    (spreadsheet exports). Raises :class:`~matcha.errors.PipelineError` listing every problem
    with its line number.
    """
    file = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise PipelineError.single(
            file, "examples file not found", "Check the path, or create a CSV with the header text,label"
        ) from exc
    except OSError as exc:
        raise PipelineError.single(file, f"cannot read the examples file: {exc.strerror}") from exc
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PipelineError.single(
            file, "the file is not UTF-8 text", "Save it as UTF-8 ('CSV UTF-8' in spreadsheets)", line=line
        ) from exc
    return _parse_examples(content, file)


def _parse_examples(content: str, file: str) -> list[tuple[str, str]]:
    header_line = content.split("\n", 1)[0]
    delimiter = ","
    if "," not in header_line:
        delimiter = next((d for d in (";", "\t") if d in header_line), ",")
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter)
    hint = "The first line must name the columns, for example: text,label"
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise PipelineError.single(file, "the examples file is empty", hint) from None
    except csv.Error as exc:
        raise PipelineError.single(file, f"not a valid CSV: {exc}", line=1) from exc
    missing = [c for c in ("text", "label") if c not in header]
    if missing:
        found = ", ".join(h for h in header if h) or "nothing"
        columns = " and no ".join(repr(c) for c in missing)
        raise PipelineError.single(file, f"the header has no {columns} column (found: {found})", hint, line=1)
    text_col, label_col = header.index("text"), header.index("label")
    examples: list[tuple[str, str]] = []
    issues: list[ConfigIssue] = []
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue  # blank line
            label = row[label_col].strip() if label_col < len(row) else ""
            if not label:
                issues.append(ConfigIssue(file, reader.line_num, 0, "", "row has no label", "Fill in the label column"))
                continue
            text = row[text_col].strip() if text_col < len(row) else ""
            examples.append((text, label))
    except csv.Error as exc:
        issues.append(ConfigIssue(file, reader.line_num, 0, "", f"not a valid CSV: {exc}"))
    if issues:
        raise PipelineError(issues)
    if not examples:
        raise PipelineError.single(
            file, "the examples file has a header but no examples", "Add rows such as: great product,positive"
        )
    return examples


@functools.cache
def _builtin(name: str) -> tuple[tuple[str, str], ...]:
    resource = resources.files("matcha").joinpath(name)
    return tuple(_parse_examples(resource.read_text(encoding="utf-8"), f"matcha/{name}"))


def builtin_sentiment_examples() -> list[tuple[str, str]]:
    """The built-in English + French sentiment examples (labels negative / neutral / positive).

    Written for Matcha (not taken from any dataset): product, restaurant and hotel reviews,
    customer-support messages, tweets, TV and film reviews, news-style posts and questions, in
    standard, informal and lower-cased tokenised styles.
    """
    return list(_builtin(_BUILTIN_SENTIMENT))
