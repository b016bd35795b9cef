"""Segment keywords (c-TF-IDF, FR/EN tokenisation) and the bounded per-segment keepers."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer

from matcha.ml.keywords import (
    KeywordCollector,
    SmallestPerSegment,
    class_tfidf,
    stop_words,
    terms,
    tokenize,
)

pytestmark = pytest.mark.unit

STOP = stop_words()

FRENCH = {
    0: [
        "Le colis n'est jamais arrivé, la livraison a pris trois semaines.",
        "Livraison en retard et colis abîmé, c'est inadmissible.",
        "J'attends toujours mon colis, aucune nouvelle de la livraison.",
        "Le livreur a laissé le colis devant la porte sous la pluie.",
    ],
    1: [
        "La facture est fausse : on m'a débité deux fois.",
        "Remboursement toujours pas reçu, la facture reste erronée.",
        "Prélèvement en double sur ma facture, je veux un remboursement.",
        "Qu'on m'explique cette facture et le remboursement promis !",
    ],
}
ENGLISH = {
    0: [
        "The dress runs small, I had to order a larger size.",
        "Sizing is off: the size chart says medium but it fits like a small.",
        "Order one size up, the sleeves are tight and the size is small.",
    ],
    1: [
        "The fabric is thin and the fabric pills after one wash.",
        "Lovely soft fabric, but the fabric shrank in the wash.",
        "Cheap fabric; the wash left it faded.",
    ],
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("L'avion d'Air France", ["avion", "air", "france"]),
        ("Qu'il parte jusqu'à l’hôtel", ["parte", "hôtel"]),  # ’ (U+2019) like '
        ("C'est aujourd'hui, s'il te plaît", ["aujourd'hui", "plaît"]),
        ("Une qualité médiocre, très déçue", ["qualité", "médiocre", "déçue"]),
        ("I don't like the customer's t-shirt", ["customer", "t-shirt"]),
        ("It's @united's fault https://t.co/x &amp; #WorstAirline", ["fault", "worstairline"]),
        ("Flight UA1510 was 3 hours late", ["flight", "hours", "late"]),
    ],
)
def test_tokenize_handles_elisions_clitics_and_noise(text: str, expected: list[str]) -> None:
    assert tokenize(text, STOP) == expected


def test_stop_word_lists() -> None:
    french, english = stop_words(("fr",)), stop_words(("en",))
    assert {"le", "la", "les", "de", "des", "du", "et", "est", "qui", "dans", "très", "été", "à", "qu"} <= french
    assert {"the", "and", "is", "of", "dont", "you"} <= english
    # content words customers talk about stay, even when scikit-learn's list drops them
    assert not {"top", "bottom", "back", "call", "bill", "car", "son", "sale"} & (french | english)
    with pytest.raises(ValueError, match=r"Valid values are: \['en', 'fr'\]"):
        stop_words(("de",))


def test_bigrams_are_built_after_stop_words() -> None:
    assert terms("a waste of time", STOP) == ["waste", "time", "waste time"]
    assert terms("service client", STOP, (2, 2)) == ["service client"]


@pytest.mark.parametrize(("corpus", "expected"), [(FRENCH, ("colis", "facture")), (ENGLISH, ("size", "fabric"))])
def test_keywords_of_a_toy_corpus(corpus: dict[int, list[str]], expected: tuple[str, str]) -> None:
    collector = KeywordCollector(seed=0)
    segments = [s for s, texts in corpus.items() for _ in texts]
    collector.add(segments, [t for texts in corpus.values() for t in texts])
    keywords = collector.keywords(top_n=5)
    for segment, word in enumerate(expected):
        assert keywords[segment][0][0] == word
        scores = [score for _, score in keywords[segment]]
        assert scores == sorted(scores, reverse=True) and scores[0] > 0
    assert all(w not in STOP for top in keywords.values() for term, _ in top for w in term.split())


def test_extra_stop_words_are_ignored() -> None:
    collector = KeywordCollector(extra_stop_words=["Colis"])
    collector.add([0] * 4 + [1] * 4, [t for texts in FRENCH.values() for t in texts])
    assert all("colis" not in term for term, _ in collector.keywords(20)[0])


def test_class_tfidf_matches_the_bertopic_formula() -> None:
    docs = [t for texts in FRENCH.values() for t in texts] + [t for texts in ENGLISH.values() for t in texts]
    classes = [0] * 4 + [1] * 4 + [2] * 3 + [3] * 3
    vectorizer = CountVectorizer(analyzer=lambda text: terms(text, STOP))
    X = vectorizer.fit_transform(docs).toarray().astype(float)
    per_class = np.stack([X[np.array(classes) == c].sum(axis=0) for c in range(4)])
    tf = per_class / per_class.sum(axis=1, keepdims=True)
    idf = np.log(1 + per_class.sum(axis=1).mean() / per_class.sum(axis=0))
    expected = tf * idf
    vocabulary = vectorizer.get_feature_names_out()
    counts = {c: Counter({vocabulary[j]: per_class[c, j] for j in np.flatnonzero(per_class[c])}) for c in range(4)}
    got = class_tfidf(counts, top_n=1000)
    for c in range(4):
        assert {t: s for t, s in got[c]} == pytest.approx({vocabulary[j]: expected[c, j]
                                                           for j in np.flatnonzero(per_class[c])})


def test_sampled_keywords_are_exact_when_every_text_fits_and_bounded_otherwise() -> None:
    rng = np.random.default_rng(0)
    words = ["colis", "livraison", "facture", "remboursement", "taille", "tissu", "retard", "service"]
    texts = [" ".join(rng.choice(words, 6)) for _ in range(3000)]
    segments = rng.integers(0, 3, 3000)
    everything = KeywordCollector(texts_per_segment=3000)
    sampled = KeywordCollector(texts_per_segment=200, seed=1)
    for start in range(0, 3000, 400):
        everything.add(segments[start : start + 400], texts[start : start + 400])
        sampled.add(segments[start : start + 400], texts[start : start + 400])
    exact = {s: Counter(t for text, seg in zip(texts, segments, strict=True) if seg == s for t in terms(text, STOP))
             for s in range(3)}
    assert everything.keywords(8) == class_tfidf(exact, 8)
    assert all(len(sampled.sample.get(s)) == 200 for s in range(3))
    estimated = sampled.counts()
    for s in range(3):  # scaled to all members: unbiased, about 7% standard error here
        assert estimated[s]["colis"] == pytest.approx(exact[s]["colis"], rel=0.25)
        assert sum(estimated[s].values()) == pytest.approx(sum(exact[s].values()), rel=0.05)


def test_keywords_do_not_depend_on_batch_sizes() -> None:
    texts = [t for texts in FRENCH.values() for t in texts] * 30
    segments = ([0] * 4 + [1] * 4) * 30
    results = []
    for size in (240, 7, 50):
        collector = KeywordCollector(texts_per_segment=20, seed=3)
        for start in range(0, len(texts), size):
            collector.add(segments[start : start + size], texts[start : start + size])
        results.append(collector.keywords())
    assert results[0] == results[1] == results[2]


def test_missing_texts_count_as_empty() -> None:
    collector = KeywordCollector()
    collector.add([0, 0, 1], [None, "colis perdu", None])
    assert collector.keywords()[0][0][0] in {"colis", "perdu", "colis perdu"}
    assert collector.keywords()[1] == []


def test_smallest_per_segment_equals_a_full_sort() -> None:
    rng = np.random.default_rng(5)
    segments, keys = rng.integers(0, 4, 5000), rng.random(5000).round(2)  # many ties
    keeper = SmallestPerSegment(7)
    for start in range(0, 5000, 333):
        keeper.add(segments[start : start + 333], keys[start : start + 333], list(range(start, min(start + 333, 5000))))
    for s in range(4):
        members = sorted((keys[i], i) for i in np.flatnonzero(segments == s))[:7]
        assert keeper.get(s) == [(float(k), int(i)) for k, i in members]
        assert keeper.seen[s] == int((segments == s).sum())
    assert keeper.segments() == [0, 1, 2, 3] and keeper.get(9) == []
    with pytest.raises(ValueError, match="differ in length"):
        keeper.add([0], [0.1, 0.2], ["a"])


def test_class_tfidf_of_nothing() -> None:
    assert class_tfidf({}) == {}
    assert class_tfidf({0: Counter()}) == {0: []}
    assert math.isclose(class_tfidf({0: Counter({"a": 1.0})})[0][0][1], math.log(2))
