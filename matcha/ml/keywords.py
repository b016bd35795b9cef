"""Describing segments: class-based TF-IDF keywords and the members closest to each centre.

Both are fed batch by batch while the ``describe`` step streams the assigned records, in bounded
memory whatever the number of records:

* :class:`SmallestPerSegment` keeps, per segment, the ``m`` items with the smallest key. With
  distances as keys it gives the members closest to the centre (the segment's most typical
  texts); with seeded random keys, a uniform sample of the members.
* :class:`KeywordCollector` keeps such a seeded sample of texts per segment (2,000 by default)
  and computes c-TF-IDF keywords on it at the end. Tokenising every text of a million would cost
  tens of seconds; the sample costs well under a microsecond per text while streaming, and the top
  keywords of a segment are its frequent terms, which 2,000 texts estimate well. Counts are scaled
  by ``members / sampled`` so the estimate targets the c-TF-IDF of all members.

c-TF-IDF (Grootendorst, BERTopic): ``W(t, c) = tf(t, c) · log(1 + A / f(t))``, with ``tf`` the
frequency of term ``t`` in segment ``c`` divided by the number of terms of ``c`` (L1-normalised,
as BERTopic does), ``f(t)`` the frequency of ``t`` over all segments and ``A`` the average number
of terms per segment. Terms are unigrams and bigrams of lower-cased words, accents kept, after
removing French and English stop words (``matcha/data/stopwords_*.txt``) — as scikit-learn's
``CountVectorizer`` does, so "waste of time" gives the bigram "waste time". French elisions are
cut ("l'avion" -> "avion", "qu'il" -> "il"), English clitics stripped ("customer's" -> "customer";
"don't" is dropped), and links, @handles, HTML entities and tokens with digits are ignored.
"""

from __future__ import annotations

import functools
import heapq
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

LANGUAGES: tuple[str, ...] = ("en", "fr")

_ELIDED = frozenset({"l", "d", "j", "m", "n", "s", "t", "c", "qu", "jusqu", "lorsqu", "puisqu", "quoiqu", "presqu"})
_CLITICS = ("s", "re", "ve", "ll", "d", "m")
_NOISE = re.compile(r"https?://\S+|www\.\S+|(?<!\w)@\w+|&#?\w+;")
_WORD = re.compile(r"\w+(?:['’\-]\w+)*")


@functools.cache
def stop_words(languages: tuple[str, ...] = LANGUAGES) -> frozenset[str]:
    """The stop words of ``languages`` (``"en"``, ``"fr"``) from Matcha's data files."""
    words: set[str] = set()
    for lang in languages:
        if lang not in LANGUAGES:
            raise ValueError(f"Received invalid value `{lang}`. Valid values are: {list(LANGUAGES)}")
        text = resources.files("matcha").joinpath(f"data/stopwords_{lang}.txt").read_text(encoding="utf-8")
        words.update(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return frozenset(words)


def tokenize(text: str, stop: frozenset[str] = frozenset()) -> list[str]:
    """Lower-cased words of ``text`` without elisions, clitics, stop words, digits or 1-letter words."""
    tokens = []
    for match in _WORD.finditer(_NOISE.sub(" ", text.lower())):
        word = match.group().replace("’", "'")
        if "'" in word:
            head, _, rest = word.partition("'")
            if head in _ELIDED:
                word = rest  # French elision: l'avion -> avion, jusqu'à -> à
            elif word.endswith("n't"):
                continue  # don't, can't, isn't: function words
            else:
                stem, _, tail = word.rpartition("'")
                word = stem if tail in _CLITICS else word  # customer's -> customer; aujourd'hui stays
        if len(word) < 2 or word in stop or any(ch.isdigit() for ch in word):
            continue
        tokens.append(word)
    return tokens


def terms(text: str, stop: frozenset[str] = frozenset(), ngram_range: tuple[int, int] = (1, 2)) -> list[str]:
    """The n-grams of :func:`tokenize` (stop words removed first, as scikit-learn does)."""
    tokens = tokenize(text, stop)
    low, high = ngram_range
    return [" ".join(tokens[i : i + size]) for size in range(low, high + 1) for i in range(len(tokens) - size + 1)]


def class_tfidf(counts: Mapping[int, Mapping[str, float]], top_n: int = 10) -> dict[int, list[tuple[str, float]]]:
    """Top ``top_n`` terms of each class by c-TF-IDF, from per-class term counts.

    Ties are broken by the term, so the result is deterministic. Classes without terms get ``[]``.
    """
    totals = {c: sum(terms.values()) for c, terms in counts.items()}
    if not counts or not any(totals.values()):
        return {c: [] for c in counts}
    average = sum(totals.values()) / len(counts)
    frequency: Counter[str] = Counter()
    for terms in counts.values():
        frequency.update(terms)
    result = {}
    for c, terms in counts.items():
        scored = ((t, n / totals[c] * math.log(1 + average / frequency[t])) for t, n in terms.items() if n > 0)
        result[c] = heapq.nsmallest(top_n, scored, key=lambda pair: (-pair[1], pair[0]))
    return result


class SmallestPerSegment:
    """Per segment, the ``m`` items with the smallest keys, fed batch by batch in bounded memory.

    Ties between equal keys go to the item added first. For the members closest to the centre::

        closest = SmallestPerSegment(5)
        closest.add(assignment.labels, assignment.distances, ids)   # each batch
        closest.get(0)  # [(distance, id), ...] nearest first
    """

    def __init__(self, m: int):
        if m < 1:
            raise ValueError(f"m must be >= 1; got {m}")
        self.m = m
        self._keys: dict[int, np.ndarray] = {}
        self._order: dict[int, np.ndarray] = {}
        self._items: dict[int, list[Any]] = {}
        # candidates not merged yet: merged once there are m of them (one sort per m candidates,
        # not one per batch: early on, most of every batch beats the current m-th)
        self._pending: dict[int, list[tuple[np.ndarray, np.ndarray, list[Any]]]] = {}
        self._pending_n: Counter[int] = Counter()
        self.seen: Counter[int] = Counter()  # items offered per segment
        self._added = 0

    def add(self, segments: ArrayLike, keys: ArrayLike, items: Sequence[Any]) -> None:
        labels, values = np.asarray(segments), np.asarray(keys, dtype=np.float64)
        if not len(labels) == len(values) == len(items):
            raise ValueError(f"segments, keys and items differ in length: {len(labels)}, {len(values)}, {len(items)}")
        order = np.arange(self._added, self._added + len(values))
        self._added += len(values)
        for segment in np.unique(labels).tolist():
            index = np.flatnonzero(labels == segment)
            self.seen[segment] += len(index)
            kept = self._keys.get(segment)
            if kept is not None and len(kept) == self.m:
                index = index[values[index] < kept[-1]]  # cannot beat the current m-th: skip cheaply
                if not len(index):
                    continue
            self._pending.setdefault(segment, []).append(
                (values[index], order[index], [items[i] for i in index.tolist()]))
            self._pending_n[segment] += len(index)
            if self._pending_n[segment] >= self.m:
                self._merge(segment)

    def _merge(self, segment: int) -> None:
        pending = self._pending.pop(segment, [])
        self._pending_n[segment] = 0
        if not pending:
            return
        keys = np.concatenate([self._keys.get(segment, np.empty(0)), *(p[0] for p in pending)])
        order = np.concatenate([self._order.get(segment, np.empty(0, dtype=np.int64)), *(p[1] for p in pending)])
        items = [*self._items.get(segment, []), *(item for p in pending for item in p[2])]
        best = np.lexsort((order, keys))[: self.m]
        self._keys[segment], self._order[segment] = keys[best], order[best]
        self._items[segment] = [items[i] for i in best.tolist()]

    def segments(self) -> list[int]:
        return sorted({*self._items, *self._pending})

    def get(self, segment: int) -> list[tuple[float, Any]]:
        """``(key, item)`` pairs of ``segment``, smallest key first (``[]`` for an unseen segment)."""
        self._merge(segment)
        return list(zip(self._keys.get(segment, np.empty(0)).tolist(), self._items.get(segment, []), strict=True))


class KeywordCollector:
    """c-TF-IDF keywords per segment from a bounded, seeded sample of member texts.

    ``add`` draws one seeded random key per text, in order, so the sample depends on the seed and
    the order of the texts, not on the batch sizes. Memory: at most ``texts_per_segment`` texts
    per segment, kept in :attr:`sample` (a :class:`SmallestPerSegment` keyed by the random draws).
    ``languages``: whose stop words to remove (both by default: a segment often mixes French and
    English texts); ``extra_stop_words``: more words to ignore (domain words such as a brand name).
    """

    def __init__(self, *, texts_per_segment: int = 2_000, seed: int = 0, languages: Iterable[str] = LANGUAGES,
                 extra_stop_words: Iterable[str] = (), ngram_range: tuple[int, int] = (1, 2)):
        if not 1 <= ngram_range[0] <= ngram_range[1]:
            raise ValueError(f"ngram_range must be (low, high) with 1 <= low <= high; got {ngram_range}")
        self.sample = SmallestPerSegment(texts_per_segment)
        self._rng = np.random.default_rng([seed, 2])
        self._stop = _stop_set(tuple(languages)) | {w.lower() for w in extra_stop_words}
        self.ngram_range = ngram_range

    def add(self, segments: ArrayLike, texts: Sequence[str | None]) -> None:
        """Offer one batch of member texts with their segment ids (``None`` texts count as empty)."""
        self.sample.add(segments, self._rng.random(len(texts)), texts)

    def counts(self) -> dict[int, Counter[str]]:
        """Estimated term counts per segment: sampled counts × members / sampled texts."""
        result = {}
        for segment in self.sample.segments():
            texts = [text for _, text in self.sample.get(segment)]
            scale = self.sample.seen[segment] / len(texts)
            counted: Counter[str] = Counter()
            for text in texts:
                counted.update(terms(text or "", self._stop, self.ngram_range))
            result[segment] = Counter({t: n * scale for t, n in counted.items()})
        return result

    def keywords(self, top_n: int = 10) -> dict[int, list[tuple[str, float]]]:
        """The ``top_n`` keywords of each segment with their c-TF-IDF scores, best first."""
        return class_tfidf(self.counts(), top_n)


@functools.cache
def _stop_set(languages: tuple[str, ...]) -> frozenset[str]:
    return stop_words(tuple(sorted(set(languages))))
