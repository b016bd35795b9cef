"""Measurable style: the figures a voice profile keeps and a conformity note compares."""

from __future__ import annotations

import pytest

from matcha.ml.style import describe_person, sentences, style_of

pytestmark = pytest.mark.unit


def test_sentences_lists_and_punctuation_are_counted() -> None:
    text = ("We ship every week. Do you want to know how? Read on!\n\n"
            "- first, we plan;\n- then we build: fast.\n\nThat is all (really) 🚀")
    s = style_of(text, "en")
    assert sentences(text)[:3] == ["We ship every week.", "Do you want to know how?", "Read on!"]
    assert s["questions"] == pytest.approx(1 / 6) and s["exclamations"] == pytest.approx(1 / 6)
    assert s["list_lines"] == pytest.approx(2 / 4)  # of the non-empty lines
    assert s["emoji"] > 0 and s["semicolons"] > 0 and s["colons"] > 0 and s["parentheses"] > 0
    assert s["person_we"] > 0 and s["person_you"] > 0 and s["person_i"] == 0
    assert describe_person(s, "en") == "we, to you"


@pytest.mark.parametrize(("text", "tu_share", "person"), [
    ("Tu trouveras ici ton guide. Tu peux le lire quand tu veux.", 1.0, "to tu"),
    ("Vous trouverez ici votre guide. Nous l'avons écrit pour vous.", 0.0, "nous, to vous"),
    ("Le guide décrit la procédure. La procédure comporte trois étapes.", None, "impersonal"),
    ("J'ai écrit ce guide et je l'ai relu.", None, "je"),
])
def test_french_address_tu_or_vous(text: str, tu_share: float | None, person: str) -> None:
    s = style_of(text, "fr")
    assert s["tu_share"] == tu_share
    assert describe_person(s, "fr") == person


def test_lengths_are_per_sentence_and_paragraph() -> None:
    text = "One two three four. Five six.\n\nSeven eight nine ten eleven twelve."
    s = style_of(text, "en")
    assert s["words"] == 12 and s["sentence_words"] == pytest.approx(4.0) and s["paragraph_words"] == 6
    assert style_of("", "en")["words"] == 0  # no division by zero on an empty text
    assert "person_we" not in style_of("Hallo Welt.", "de")  # other languages: language-free figures only
