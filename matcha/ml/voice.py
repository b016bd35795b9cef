"""A voice profile learned from a client's own passages, and a conformity score of new text against it.

**The profile** (:class:`Profile`) keeps what a copywriter can read and edit: the measurable style of
the passages (:func:`matcha.ml.style.style_of` plus readability: the median and the usual range of
each figure), the voice's distinctive words and phrases against general language (word frequencies
of the language from ``wordfreq``), optional do/don't rules, and the exemplar passages themselves.

**The score** compares a text with the exemplars in two ways that measure how it is written, not
only what it is about:

- *character n-grams*: the text's 2–5 character n-grams (TF-IDF, within words) against each
  exemplar; the mean cosine of the 5 nearest exemplars. Character n-grams carry function words,
  inflections, punctuation and spelling habits as much as topic words;
- *word model*: the text's mean per-word log-likelihood ratio under a unigram model of the voice
  (Dirichlet-smoothed towards general language, ``mu = 2000``) against general language alone: how
  much more likely the voice is than any writer of the language to have chosen these words.

Each is standardised against the voice's own passages scored *as if unseen* (grouped k-fold by page:
a passage is scored by a model built without its page), so both count alike and a score of the
voice's typical held-out passage is the same for every profile. Their mean ``z`` is mapped to 0–100
by ``100 / (1 + exp(-(SLOPE * z + OFFSET)))``: a held-out passage typical of the voice (z = 0) scores
85, z = -0.5 scores 70, z = -1 52 and z = -2 17; text by another writer of the language usually
scores under 40 (measured figures: ``docs/tone-of-voice.md``).

**The notes** name the two or three measured figures furthest outside the voice's usual range, in
a copywriter's words ("sentences twice as long as the voice's median (24 words against 12)", "uses
'tu' where the voice says 'vous'", "none of the voice's usual vocabulary (such as ...)").
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from matcha.errors import VoiceError
from matcha.ml.style import describe_person, style_of

__all__ = ["MIN_PAGES", "MIN_WORDS", "Profile", "Score", "VoiceError", "profile_hash", "to_score"]

#: fewest pages and words a reliable profile is built from
MIN_PAGES = 5
MIN_WORDS = 1500
#: the word model's smoothing towards general language
MU = 2000.0
NEIGHBOURS = 5
#: z (mean of the two standardised measures) -> 0-100
SLOPE, OFFSET = 1.6, 1.7
#: a word's log likelihood ratio counts at most this much (one very distinctive word repeated is not a voice),
#: and each measure's standardised value at most MAX_Z
MAX_RATIO, MAX_Z = 8.0, 4.0
#: smallest standard deviations of the two measures over the exemplars (similarity, log ratio)
SD_FLOOR = np.array([0.01, 0.05])
#: repeated phrases past the voice's usual share (75th percentile) that cost nothing
REPEAT_SLACK, REPEAT_FLOOR = 0.1, 0.2
#: exemplars kept in a profile: per page, and in all
MAX_PER_PAGE, MAX_EXEMPLARS = 12, 600
#: a draft with at least this share of its 8-word runs taken from the exemplars gets a note
COPIED = 0.3
#: a text under this many words gets a note that its score is less reliable
SHORT_TEXT = 40
FORMAT = 1

_WORDISH = re.compile(r"^[^\W\d_]{3,}$")
_WORDISH_ANY = re.compile(r"[^\W\d_]{2,}")
#: languages a scored text's own language is detected among (py3langid)
DETECTED = ("en", "fr", "de", "es", "it", "nl", "pt")



@dataclass(frozen=True)
class Exemplar:
    id: str
    page: str
    text: str


@dataclass
class Score:
    """A text's conformity to a voice: ``score`` 0–100 and the largest deviations, worded."""

    score: int
    notes: list[str]
    z: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


# -- measures -------------------------------------------------------------------------------------

#: figure -> (what it is, floor of its usual range's width: a range narrower than this is widened)
MEASURES: dict[str, tuple[str, float]] = {
    "sentence_words": ("words per sentence", 3.0),
    "paragraph_words": ("words per paragraph", 15.0),
    "word_length": ("letters per word", 0.3),
    "questions": ("share of sentences that are questions", 0.05),
    "exclamations": ("share of sentences that end with '!'", 0.05),
    "list_lines": ("share of lines that are list items", 0.1),
    "emoji": ("emoji per 100 words", 0.5),
    "commas": ("commas per sentence", 0.5),
    "semicolons": ("semicolons per 100 words", 0.3),
    "colons": ("colons per 100 words", 0.4),
    "parentheses": ("parentheses per 100 words", 0.4),
    "dashes": ("dashes per 100 words", 0.4),
    "capitals": ("words in capitals per 100 words", 1.0),
    "readability": ("reading ease (Flesch; higher is easier)", 8.0),
    "vocabulary": ("the voice's distinctive words per 100 words", 1.0),
    "repetition": ("share of the text's 3-word phrases used more than once", 0.05),
    "person_we": ("we/us/our (nous/notre) per 100 words", 0.8),
    "person_i": ("I/me/my (je/moi/mon) per 100 words", 0.8),
    "person_you": ("you/your per 100 words", 0.8),
    "person_vous": ("vous/votre per 100 words", 0.8),
    "person_tu": ("tu/toi/ton per 100 words", 0.8),
}


@functools.cache
def _hyphenator(language: str) -> Any:
    import pyphen

    return pyphen.Pyphen(lang={"fr": "fr_FR", "en": "en_US"}.get(language, "en_US"))


def readability(text: str, language: str) -> float | None:
    """Flesch reading ease (English), Kandel & Moles' version for French; None for other languages.
    Syllables are counted with pyphen's hyphenation dictionaries."""
    if language not in ("en", "fr"):
        return None
    from matcha.ml.style import sentences, words

    toks = words(text)
    if not toks:
        return None
    hyph = _hyphenator(language)
    syllables = sum(len(hyph.positions(t.lower())) + 1 for t in toks)
    per_sentence = len(toks) / max(len(sentences(text)), 1)
    per_word = syllables / len(toks)
    if language == "fr":
        return 207.0 - 1.015 * per_sentence - 73.6 * per_word
    return 206.835 - 1.015 * per_sentence - 84.6 * per_word


def tokens(text: str, language: str) -> list[str]:
    """Words as the word model counts them (wordfreq's tokenizer: lower case, elisions split)."""
    import wordfreq

    return list(wordfreq.tokenize(text.replace("’", "'"), language))


def measure(text: str, language: str, vocabulary: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The figures a profile keeps for one text (see :data:`MEASURES`)."""
    figures = style_of(text, language)
    figures["readability"] = readability(text, language)
    toks = tokens(text, language)
    figures["vocabulary"] = 100.0 * sum(1 for t in toks if t in vocabulary) / max(len(toks), 1)
    figures["repetition"] = repetition(toks)
    return figures


def repetition(toks: Sequence[str]) -> float:
    """The share of a text's word trigrams that occur more than once in it (0 for writing that does
    not repeat itself; a looping model's output reaches 0.5 and more)."""
    grams = Counter(zip(toks, toks[1:], toks[2:], strict=False))
    total = sum(grams.values())
    return sum(c for c in grams.values() if c > 1) / total if total else 0.0


# -- the scorer -----------------------------------------------------------------------------------

class _Model:
    """Character n-gram neighbours and the word model of a set of exemplars."""

    def __init__(self, texts: Sequence[str], language: str):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.language = language
        self.vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                                          min_df=2 if len(texts) >= 10 else 1, dtype=np.float32)
        self.matrix = self.vectorizer.fit_transform(texts)
        self.counts = Counter(t for text in texts for t in tokens(text, language))
        self.total = sum(self.counts.values())

    def raw(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, 2)``: nearest-exemplar similarity and word-model log ratio of each text."""
        sims = (self.vectorizer.transform(texts) @ self.matrix.T).toarray()
        k = min(NEIGHBOURS, sims.shape[1])
        near = np.sort(sims, axis=1)[:, -k:].mean(axis=1) if k else np.zeros(len(texts))
        ratio = np.array([self._ratio(tokens(t, self.language)) for t in texts])
        return np.column_stack([near, ratio])

    def _ratio(self, toks: list[str]) -> float:
        if not toks:
            return 0.0
        bg = _background(self.language)
        s = 0.0
        for tok in toks:
            b = bg(tok)
            s += min(math.log((self.counts.get(tok, 0) + MU * b) / (self.total + MU)) - math.log(b), MAX_RATIO)
        return s / len(toks)


@functools.cache
def _background(language: str) -> Callable[[str], float]:
    import wordfreq

    @functools.lru_cache(maxsize=200_000)
    def freq(word: str) -> float:
        return max(float(wordfreq.word_frequency(word, language)), 1e-8)

    return freq


def _folds(pages: Sequence[str], n: int) -> list[list[int]]:
    """Exemplar indices grouped by page into ``n`` folds (pages dealt in order of first appearance)."""
    order = list(dict.fromkeys(pages))
    fold_of = {p: i % n for i, p in enumerate(order)}
    folds: list[list[int]] = [[] for _ in range(n)]
    for i, p in enumerate(pages):
        folds[fold_of[p]].append(i)
    return [f for f in folds if f]


def calibrate(exemplars: Sequence[Exemplar], language: str) -> np.ndarray:
    """The raw measures of every exemplar scored by a model built without its page (grouped k-fold)."""
    texts = [e.text for e in exemplars]
    raw = np.zeros((len(texts), 2))
    for fold in _folds([e.page for e in exemplars], min(5, len({e.page for e in exemplars}))):
        inside = set(fold)
        model = _Model([t for i, t in enumerate(texts) if i not in inside], language)
        raw[fold] = model.raw([texts[i] for i in fold])
    return raw


# -- the profile ----------------------------------------------------------------------------------

@dataclass
class Profile:
    """What is kept of a voice: the YAML a person reads and edits (see :meth:`to_dict`)."""

    name: str
    language: str
    exemplars: list[Exemplar]
    measures: dict[str, dict[str, float]] = field(default_factory=dict)
    vocabulary: list[str] = field(default_factory=list)
    phrases: list[str] = field(default_factory=list)
    rules: dict[str, list[str]] = field(default_factory=lambda: {"do": [], "dont": []})
    summary: str = ""
    built: dict[str, Any] = field(default_factory=dict)
    index: dict[str, Any] | None = None

    _model: _Model | None = field(default=None, repr=False, compare=False)
    _calibration: np.ndarray | None = field(default=None, repr=False, compare=False)
    _runs: set[int] | None = field(default=None, repr=False, compare=False)
    _held_out: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)), repr=False, compare=False)

    # -- building
    @classmethod
    def build(cls, passages: Iterable[dict[str, Any]], *, name: str = "voice",
              progress: Callable[[int], None] | None = None) -> Profile:
        """A profile from passages (``{id, page, text, language}``, as the ``pages`` source reads them).
        The voice's language is the most common one; passages in other languages are left out."""
        rows = [p for p in passages if isinstance(p.get("text"), str) and p["text"].strip()]
        langs = Counter(_language(p.get("language")) for p in rows)
        if not rows:
            raise VoiceError(_too_little(0, 0))
        language = langs.most_common(1)[0][0]
        kept = [Exemplar(str(p.get("id")), str(p.get("page") or p.get("id")), str(p["text"]))
                for p in rows if _language(p.get("language")) == language]
        pages = {e.page for e in kept}
        n_words = sum(len(e.text.split()) for e in kept)
        if len(pages) < MIN_PAGES or n_words < MIN_WORDS:
            raise VoiceError(_too_little(len(pages), n_words))
        profile = cls(name=name, language=language, exemplars=_sample(kept))
        profile.vocabulary, profile.phrases = distinctive(kept, language)
        vocab = frozenset(profile.vocabulary)
        figures = []
        for i, e in enumerate(profile.exemplars):
            figures.append(measure(e.text, language, vocab))
            if progress:
                progress(i + 1)
        profile.measures = _ranges(figures)
        profile.summary = summarize(profile.measures, language)
        profile.built = {"pages": len(pages), "passages": len(kept), "words": n_words,
                         "exemplars": len(profile.exemplars),
                         "left_out": {k: v for k, v in langs.items() if k != language}}
        return profile

    # -- scoring
    @property
    def model(self) -> _Model:
        if self._model is None:
            self._model = _Model([e.text for e in self.exemplars], self.language)
        return self._model

    @property
    def calibration(self) -> np.ndarray:
        """Mean and standard deviation of the raw measures over the exemplars scored as unseen."""
        if self._calibration is None:
            raw = calibrate(self.exemplars, self.language)
            # floors: exemplars all alike (a site of near-identical pages) must not make every difference huge
            self._calibration = np.vstack([raw.mean(axis=0), np.maximum(raw.std(axis=0), SD_FLOOR)])
            self._held_out = raw
        return self._calibration

    def held_out_scores(self) -> list[int]:
        """The scores of the exemplars each scored by a profile built without its page (sorted)."""
        mean, sd = self.calibration
        return sorted(to_score(float(z)) for z in ((self._held_out - mean) / sd).mean(axis=1))

    def z(self, texts: Sequence[str]) -> np.ndarray:
        """How far each text is from the voice's own unseen passages, in their standard deviations
        (0: typical of the voice; below 0: less like it)."""
        if not texts:
            return np.zeros(0)
        mean, sd = self.calibration
        # no measure may vouch for a text alone: each counts at most MAX_Z above the voice's typical passage
        z = np.minimum((self.model.raw(texts) - mean) / sd, MAX_Z).mean(axis=1)
        # text that loops on itself (a small model's failure) shares the voice's words and n-grams
        # without being writing: each 10% of repeated phrases past the voice's usual share (and past 20%) costs 1 sd
        usual = max(self.measures.get("repetition", {}).get("high", 0.0) + REPEAT_SLACK, REPEAT_FLOOR)
        loops = np.array([repetition(tokens(t, self.language)) for t in texts])
        return z - 10.0 * np.clip(loops - usual, 0.0, None)  # type: ignore[no-any-return]

    def style_distance(self, texts: Sequence[str]) -> np.ndarray:
        """How far each text's measured style is from the voice's usual range: the sum of its three
        largest deviations (in widths of the range, each at most 3), topic words left out."""
        vocab = self.vocabulary_set
        out = []
        for t in texts:
            devs = sorted((min(far, 3.0) for key, (_, far) in _deviations(measure(t, self.language, vocab),
                                                                          self.measures).items()
                           if key != "vocabulary"), reverse=True)
            out.append(sum(devs[:3]))
        return np.array(out)

    def score(self, texts: Sequence[str], languages: Sequence[str | None] | None = None) -> list[Score]:
        zs = self.z(list(texts))
        vocab = frozenset(self.vocabulary)
        if languages is None and self.language in DETECTED:
            from matcha.connectors.pages import language_detector

            detect = language_detector(tuple(dict.fromkeys((self.language, "en", "fr", "de", "es", "it", "nl", "pt"))))
            languages = [detect(t) if len(_WORDISH_ANY.findall(t)) >= 8 else None for t in texts]
        out = []
        for i, (text, z) in enumerate(zip(texts, zs, strict=True)):
            value = to_score(float(z))
            lang = languages[i] if languages else None
            out.append(Score(value, self.notes(text, float(z), lang, vocab), float(z)))
        return out

    def notes(self, text: str, z: float, language: str | None = None,
              vocab: frozenset[str] | None = None) -> list[str]:
        """The two or three largest deviations of ``text`` from the voice, worded for a copywriter."""
        found: list[tuple[float, str]] = []
        if language and language != self.language:
            found.append((99.0, f"written in '{language}' where the voice writes in '{self.language}'"))
        figures = measure(text, self.language, self.vocabulary_set if vocab is None else vocab)
        for key, (value, how_far) in _deviations(figures, self.measures).items():
            worded = _word(key, value, self.measures[key], self, figures)
            if worded:
                found.append((how_far, worded))
        found.sort(key=lambda f: -f[0])
        notes = [n for far, n in found if far >= 1.0][:3]
        if not notes and z < -1.0:
            notes.append("wording unlike the voice's passages, though no single measure stands out")
        copied = self.copied(text)
        if copied >= COPIED:
            notes.insert(0, f"copies the voice's own pages: {copied:.0%} of its 8-word runs appear in them "
                            "word for word")
        n_words = figures["words"]
        if n_words < SHORT_TEXT:
            notes.append(f"only {n_words} words: scores of texts under {SHORT_TEXT} words are less reliable")
        return notes

    @property
    def key(self) -> str:
        """A digest of the exemplars: tags their points in a shared collection (see ``voice_profile``)."""
        return hashlib.sha256("\x00".join(f"{e.id}\x01{e.text}" for e in self.exemplars).encode()).hexdigest()[:32]

    def copied(self, text: str) -> float:
        """The share of ``text``'s 8-word runs found word for word in the exemplars."""
        if self._runs is None:
            self._runs = {g for e in self.exemplars for g in _runs(tokens(e.text, self.language))}
        mine = _runs(tokens(text, self.language))
        return sum(1 for g in mine if g in self._runs) / len(mine) if mine else 0.0

    @property
    def vocabulary_set(self) -> frozenset[str]:
        return frozenset(self.vocabulary)

    # -- the file
    def to_dict(self) -> dict[str, Any]:
        return {
            "matcha_voice": FORMAT,
            "name": self.name,
            "language": self.language,
            "summary": self.summary,
            "built_from": self.built,
            "measures": {k: {**v, "means": MEASURES[k][0]} for k, v in self.measures.items()},
            "vocabulary": self.vocabulary,
            "phrases": self.phrases,
            "rules": self.rules,
            **({"index": self.index} if self.index else {}),
            "exemplars": [{"id": e.id, "page": e.page, "text": e.text} for e in self.exemplars],
        }

    def to_yaml(self) -> str:
        import yaml

        head = (f"# Voice profile '{self.name}' written by Matcha. Read it, edit it (rules, vocabulary,\n"
                "# exemplars), version it: every draft scored against it carries this file's sha256.\n")
        return head + yaml.dump(self.to_dict(), Dumper=_dumper(), sort_keys=False, allow_unicode=True, width=100)

    @classmethod
    def from_dict(cls, data: Any, where: str = "profile") -> Profile:
        if not isinstance(data, dict) or data.get("matcha_voice") != FORMAT:
            raise VoiceError(f"{where} is not a Matcha voice profile (no `matcha_voice: {FORMAT}`); "
                             "build one with `matcha voice build PAGES -o profile.yaml`")
        try:
            exemplars = [Exemplar(str(e["id"]), str(e.get("page") or e["id"]), str(e["text"]))
                         for e in data.get("exemplars") or [] if str(e.get("text") or "").strip()]
            measures = {k: {kk: float(v[kk]) for kk in ("median", "low", "high")}
                        for k, v in (data.get("measures") or {}).items() if k in MEASURES}
            bad = [k for k, v in measures.items() if not all(map(math.isfinite, v.values())) or v["low"] > v["high"]]
            if bad:
                raise ValueError(f"measures {bad}: median, low and high must be numbers with low <= high")
            index = data.get("index")
            if index is not None and not isinstance(index, dict):
                raise ValueError("`index` must be a mapping {connector, collection, model}")
            rules = data.get("rules") or {}
            profile = cls(name=str(data.get("name") or "voice"), language=_language(data.get("language")),
                          exemplars=exemplars, measures=measures,
                          vocabulary=[str(w).lower() for w in data.get("vocabulary") or []],
                          phrases=[str(p) for p in data.get("phrases") or []],
                          rules={"do": [str(r) for r in rules.get("do") or []],
                                 "dont": [str(r) for r in rules.get("dont") or []]},
                          summary=str(data.get("summary") or ""), built=dict(data.get("built_from") or {}),
                          index=index)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise VoiceError(f"{where}: a field has the wrong shape ({type(exc).__name__}: {exc}); "
                             "compare it with a file written by `matcha voice build`") from None
        if len({e.page for e in exemplars}) < 2:
            raise VoiceError(f"{where}: needs exemplars from at least 2 pages to calibrate its score")
        return profile

    @classmethod
    def from_yaml(cls, text: str, where: str = "profile") -> Profile:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" (line {mark.line + 1})" if mark is not None else ""
            raise VoiceError(f"{where} is not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
        return cls.from_dict(data, where)


def _runs(toks: Sequence[str], n: int = 8) -> list[int]:
    return [hash(tuple(toks[i:i + n])) for i in range(len(toks) - n + 1)]


def to_score(z: float) -> int:
    """A standardised distance from the voice (see the module doc) as a score from 0 to 100."""
    if not math.isfinite(z):
        return 0 if z != math.inf else 100
    return round(100.0 / (1.0 + math.exp(-min(max(SLOPE * z + OFFSET, -50.0), 50.0))))


def profile_hash(text: str) -> str:
    """The sha256 of a profile file's text (what travels with the drafts scored against it)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@functools.cache
def _dumper() -> type:
    """A SafeDumper writing multi-line strings as literal blocks (exemplars stay readable)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return Dumper


def _language(value: Any) -> str:
    """A passage's language as a two-letter code ("en-US" -> "en"; unknown -> "en")."""
    code = re.split(r"[-_]", str(value or "").strip().lower(), maxsplit=1)[0]
    return code if re.fullmatch(r"[a-z]{2}", code) else "en"


def _sample(exemplars: list[Exemplar], per_page: int = MAX_PER_PAGE, total: int = MAX_EXEMPLARS) -> list[Exemplar]:
    """At most ``per_page`` passages of each page (evenly spread through it) and ``total`` in all (pages
    taken evenly): a profile of a 5,000-page site stays a file a person can read and a second to load."""
    by_page: dict[str, list[Exemplar]] = {}
    for e in exemplars:
        by_page.setdefault(e.page, []).append(e)
    kept: list[Exemplar] = []
    for items in by_page.values():
        step = max(len(items) / per_page, 1.0)
        kept += [items[int(i * step)] for i in range(min(per_page, len(items)))]
    if len(kept) > total:
        step = len(kept) / total
        kept = [kept[int(i * step)] for i in range(total)]
    return kept


def _too_little(pages: int, words: int) -> str:
    return (f"too little text for a reliable voice profile: {pages} page(s) and {words:,} words in the main "
            f"language; at least {MIN_PAGES} pages and {MIN_WORDS:,} words are needed (more is better: 15 pages "
            "or more give a steadier score). Add pages, or check that they are in one language")


def distinctive(exemplars: Sequence[Exemplar], language: str, n_words: int = 25,
                n_phrases: int = 12) -> tuple[list[str], list[str]]:
    """The words and phrases this voice uses far more than the language at large (on at least two
    pages, three times or more)."""
    from matcha.ml.keywords import stop_words

    stops = stop_words((language,))
    counts: Counter[str] = Counter()
    pages: dict[str, set[str]] = {}
    grams: Counter[str] = Counter()
    gram_pages: dict[str, set[str]] = {}
    for e in exemplars:
        toks = tokens(e.text, language)
        counts.update(toks)
        for t in set(toks):
            pages.setdefault(t, set()).add(e.page)
        for n in (2, 3):
            for i in range(len(toks) - n + 1):
                g = toks[i:i + n]
                if g[0] in stops or g[-1] in stops or not all(_WORDISH.match(w) or w in stops for w in g):
                    continue
                phrase = " ".join(g)
                grams[phrase] += 1
                gram_pages.setdefault(phrase, set()).add(e.page)
    total = sum(counts.values()) or 1
    bg = _background(language)
    keyness = {w: c * math.log((c / total) / bg(w)) for w, c in counts.items()
               if c >= 3 and len(pages[w]) >= 2 and _WORDISH.match(w) and w not in stops}
    words = [w for w, k in sorted(keyness.items(), key=lambda kv: -kv[1]) if k > 0][:n_words]
    candidates = [(p, c) for p, c in grams.items() if c >= 3 and len(gram_pages[p]) >= 2]
    candidates.sort(key=lambda pc: (-pc[1] * len(pc[0].split()), pc[0]))
    phrases: list[str] = []
    for p, c in candidates:
        if any(p in q and grams[q] >= c for q in phrases):
            continue
        phrases.append(p)
        if len(phrases) == n_phrases:
            break
    return words, phrases


def _ranges(figures: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Median and usual range (25th to 75th percentile) of each figure over the passages."""
    out: dict[str, dict[str, float]] = {}
    for key in MEASURES:
        values = np.array([f[key] for f in figures if f.get(key) is not None], dtype=float)
        if len(values) < 3:
            continue
        lo, med, hi = np.percentile(values, [25, 50, 75])
        out[key] = {"median": round(float(med), 3), "low": round(float(lo), 3), "high": round(float(hi), 3)}
    return out


def _deviations(figures: dict[str, Any], measures: dict[str, dict[str, float]]) -> dict[str, tuple[float, float]]:
    """figure -> (value, how far outside the voice's usual range, in widths of that range)."""
    out = {}
    for key, r in measures.items():
        value = figures.get(key)
        if value is None:
            continue
        width = max(r["high"] - r["low"], MEASURES[key][1])
        outside = (value - r["high"]) if value > r["high"] else (r["low"] - value) if value < r["low"] else 0.0
        out[key] = (float(value), outside / width)
    return out


def _times(a: float, b: float) -> str:
    r = a / b if b else float("inf")
    if r >= 1:
        return "twice" if r < 2.4 else "three times" if r < 3.4 else f"{r:.0f} times"
    return "half" if r > 0.4 else "a third"


def _word(key: str, value: float, r: dict[str, float], profile: Profile,  # noqa: C901 - one wording per measure
          figures: dict[str, Any]) -> str | None:
    med = r["median"]
    more = value > r["high"]
    lang = profile.language
    if key in ("sentence_words", "paragraph_words"):
        unit = "sentences" if key == "sentence_words" else "paragraphs"
        if med and (value >= 1.6 * med or value <= 0.6 * med):
            return f"{unit} {_times(value, med)} as long as the voice's median ({value:.0f} words against {med:.0f})"
        return f"{unit} {'longer' if more else 'shorter'} than the voice's ({value:.0f} words against {med:.0f})"
    if key in ("questions", "exclamations"):
        what = "questions" if key == "questions" else "exclamation marks"
        if not more:
            every = f"about one sentence in {max(round(1 / med), 1)}" if med > 0 else "sometimes"
            return f"no {what}, where the voice uses them in {every}" if value == 0 else \
                f"fewer {what} than the voice ({value:.0%} of sentences against {med:.0%})"
        return f"more {what} than the voice ({value:.0%} of sentences against {med:.0%})"
    if key == "list_lines":
        return "uses lists where the voice rarely does" if more else "no lists, where the voice often uses them"
    if key == "emoji":
        return "uses emoji where the voice has none" if more and med == 0 else \
            f"{'more' if more else 'fewer'} emoji than the voice"
    if key in ("semicolons", "colons", "parentheses", "dashes", "commas"):
        return f"{'more' if more else 'fewer'} {key} than the voice ({MEASURES[key][0]}: {value:.1f} against {med:.1f})"
    if key == "capitals":
        return (f"{'more' if more else 'fewer'} WORDS IN CAPITALS than the voice "
                f"({value:.0f} per 100 words against {med:.0f})")
    if key == "repetition":
        return f"repeats itself ({value:.0%} of its 3-word phrases occur more than once)" if more else None
    if key == "word_length":
        return f"{'longer, more formal' if more else 'shorter, plainer'} words than the voice"
    if key == "readability":
        return f"{'easier' if more else 'harder'} to read than the voice (reading ease {value:.0f} against {med:.0f})"
    if key == "vocabulary":
        if more:
            return None  # more of the voice's own words is not a deviation worth a note
        examples = ", ".join(f"'{w}'" for w in profile.vocabulary[:3])
        return (f"none of the voice's usual vocabulary (such as {examples})" if value == 0
                else f"little of the voice's usual vocabulary (such as {examples})")
    if key.startswith("person_"):
        return _person(key.removeprefix("person_"), more, lang, figures, profile)
    return None


def _person(who: str, more: bool, lang: str, figures: dict[str, Any], profile: Profile) -> str | None:
    if lang == "fr" and who in ("tu", "vous"):
        other = "vous" if who == "tu" else "tu"
        if more:
            return f"uses '{who}' where the voice says '{other}'"
        if figures.get(f"person_{other}", 0):
            return None  # the 'other' note says it
        return f"does not address the reader as '{who}' as the voice does"
    word = {"we": "nous" if lang == "fr" else "we", "i": "je" if lang == "fr" else "I", "you": "you"}.get(who, who)
    return f"says '{word}' more than the voice does" if more else f"rarely says '{word}', where the voice often does"


def summarize(measures: dict[str, dict[str, float]], language: str) -> str:
    """The voice in one line: "sentences of about 11 words; speaks as we, to you; a question every 6 sentences..."."""
    parts = []
    m = {k: v["median"] for k, v in measures.items()}
    if "sentence_words" in m:
        parts.append(f"sentences of about {m['sentence_words']:.0f} words")
    style = {f"person_{p}": m.get(f"person_{p}", 0.0) for p in ("we", "i", "you", "tu", "vous")}
    parts.append(f"speaks {describe_person(style, language)}" if describe_person(style, language) != "impersonal"
                 else "impersonal (no 'we', no 'you')")
    for key, what in (("questions", "a question"), ("exclamations", "an exclamation")):
        if m.get(key, 0) > 0.01:
            parts.append(f"{what} every {max(round(1 / m[key]), 1)} sentences")
    if m.get("list_lines", 0) > 0.05:
        parts.append("lists often")
    if m.get("emoji", 0) > 0.05:
        parts.append("emoji")
    if "readability" in m:
        ease = m["readability"]
        parts.append(f"reading ease {ease:.0f} ({'easy' if ease >= 70 else 'standard' if ease >= 50 else 'demanding'})")
    return "; ".join(parts)
