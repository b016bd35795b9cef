"""The voice profile and its conformity score (matcha.ml.voice), on the example brand's pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import IN_VOICE

from matcha.ml.voice import (
    MIN_PAGES,
    MIN_WORDS,
    Profile,
    distinctive,
    measure,
    profile_hash,
    readability,
    repetition,
    tokens,
)
from matcha.voice import Voice, VoiceError, read_passages

pytestmark = pytest.mark.unit

SITE = Path(__file__).resolve().parents[2] / "examples" / "site"

#: longer than support.CORPORATE: these tests read its readability and measures
CORPORATE_NOTICE = (
    "Our organisation hereby announces the commercial availability of a premium beverage product, which, "
    "in accordance with applicable regulatory frameworks, shall be distributed exclusively through "
    "authorised retail channels; consumers are advised to consult the packaging documentation regarding "
    "preparation instructions, storage conditions and allergen information prior to consumption.")


@pytest.fixture(scope="module")
def voice() -> Voice:
    return Voice.build(SITE)


def test_profile_measures_the_pages(voice: Voice) -> None:
    p = voice.profile
    assert p.language == "en" and p.built["pages"] == 9 and len(p.exemplars) == p.built["passages"]
    assert {"sentence_words", "questions", "person_we", "person_you", "readability", "vocabulary"} <= set(p.measures)
    assert p.measures["sentence_words"]["low"] <= p.measures["sentence_words"]["median"] <= \
        p.measures["sentence_words"]["high"]
    assert {"tea", "kettle", "steep"} <= set(p.vocabulary)
    assert "small batches" in p.phrases and "little ritual" in p.phrases
    assert "speaks we, to you" in p.summary


def test_text_in_the_voice_outscores_other_writing(voice: Voice) -> None:
    good, bad = voice.score([IN_VOICE, CORPORATE_NOTICE])
    assert good.score >= 70 > 30 > bad.score
    assert any("sentences" in n and "as long as the voice's median" in n for n in bad.notes)
    assert len(bad.notes) <= 4 and good.profile == bad.profile == voice.hash


def test_own_held_out_passages_score_high(voice: Voice) -> None:
    held = voice.held_out_scores()
    assert len(held) == len(voice.profile.exemplars) and held == sorted(held)
    assert held[len(held) // 2] >= 70  # the median passage, scored by a profile built without its page


def test_looping_text_scores_low_with_a_note(voice: Voice) -> None:
    loop = " ".join(["Steep the leaf in the kettle for a slow sip."] * 8)
    s = voice.score([loop])[0]
    assert s.score < 30 and any(n.startswith("repeats itself") for n in s.notes)
    assert repetition(tokens(loop, "en")) > 0.8 and repetition(tokens(IN_VOICE, "en")) == 0


def test_language_and_short_text_notes(voice: Voice) -> None:
    (fr,) = voice.score(["Nous avons préparé ce thé pour vous, avec des feuilles choisies une à une dans nos "
                         "ateliers de Lyon."])
    assert fr.notes[0] == "written in 'fr' where the voice writes in 'en'"
    assert any("less reliable" in n for n in fr.notes)


FRENCH_VOUS = [{"id": f"p{i}#1", "page": f"p{i}", "language": "fr", "text": (
    "Vous trouverez ici nos guides. Nous vous expliquons comment publier vos données. Votre équipe peut "
    "commencer dès aujourd'hui, et nous restons à votre écoute pour vous aider. ") * 10} for i in range(6)]


def test_french_address_notes_tu_against_vous() -> None:
    v = Voice.from_passages(FRENCH_VOUS, name="guides")
    assert v.language == "fr" and v.profile.measures["person_vous"]["median"] > 5
    (s,) = v.score(["Tu trouveras ici nos guides. Nous t'expliquons comment publier tes données. Ton équipe peut "
                    "commencer dès aujourd'hui, et nous restons à ton écoute pour t'aider à chaque étape."])
    assert "uses 'tu' where the voice says 'vous'" in s.notes


def _rows(pages: int, words_per_page: int) -> list[dict[str, Any]]:
    text = " ".join(["Steep the leaf slowly."] * (words_per_page // 4))
    return [{"id": f"p{i}#1", "page": f"p{i}", "text": text, "language": "en"} for i in range(pages)]


@pytest.mark.parametrize(("rows", "pages", "words"), [
    ([], 0, 0),
    (_rows(MIN_PAGES - 1, 600), MIN_PAGES - 1, (MIN_PAGES - 1) * 600),
    (_rows(MIN_PAGES, 100), MIN_PAGES, MIN_PAGES * 100),
])
def test_too_little_text_says_how_much_is_needed(rows: list[dict[str, Any]], pages: int, words: int) -> None:
    with pytest.raises(VoiceError) as err:
        Profile.build(rows)
    message = str(err.value)
    assert f"{pages} page(s) and {words:,} words" in message
    assert f"at least {MIN_PAGES} pages and {MIN_WORDS:,} words" in message


def test_yaml_round_trip_keeps_the_hash(voice: Voice, tmp_path: Path) -> None:
    path = voice.save(tmp_path / "profile.yaml")
    again = Voice.load(path)
    assert again.hash == voice.hash == profile_hash(path.read_text(encoding="utf-8"))
    assert again.profile.exemplars == voice.profile.exemplars and again.profile.measures == voice.profile.measures
    assert again.score([IN_VOICE])[0].score == voice.score([IN_VOICE])[0].score
    # a person edits the rules: the profile is another version
    path.write_text(path.read_text(encoding="utf-8").replace("do: []", "do: [Ask the reader a question]"))
    edited = Voice.load(path)
    assert edited.profile.rules["do"] == ["Ask the reader a question"] and edited.hash != voice.hash


@pytest.mark.parametrize(("text", "message"), [
    ("a: [1, 2", "is not valid YAML (line 1)"),
    ("name: x\n", "is not a Matcha voice profile"),
    ("matcha_voice: 1\nexemplars: [{text: hi}]\n", "a field has the wrong shape"),
    ("matcha_voice: 1\nexemplars: [{id: a, page: p, text: hi}]\n", "at least 2 pages"),
])
def test_a_file_that_is_not_a_profile_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(VoiceError) as err:
        Voice.from_yaml(text, "profile.yaml")
    assert message in str(err.value) and "profile.yaml" in str(err.value)


def test_measures_and_readability() -> None:
    figures = measure("We love tea. Do you?\n\n- one\n- two", "en", frozenset({"tea"}))
    assert figures["questions"] == pytest.approx(1 / 4) and figures["vocabulary"] > 0
    easy, hard = readability("The cat sat. It was warm.", "en"), readability(CORPORATE_NOTICE, "en")
    assert easy is not None and hard is not None and easy > 80 > 20 > hard
    assert readability("Der Hund.", "de") is None


def test_distinctive_words_need_two_pages() -> None:
    rows = [p for p in read_passages([SITE])]
    from matcha.ml.voice import Exemplar

    ex = [Exemplar(r["id"], r["page"], r["text"]) for r in rows]
    words, _ = distinctive(ex, "en")
    assert "kettle" in words and "margaux" in words  # a name on several pages is distinctive too
    only_one = [Exemplar("a#1", "a", "zorblatt zorblatt zorblatt tea"), Exemplar("b#1", "b", "tea tea")]
    assert "zorblatt" not in distinctive(only_one, "en")[0]


def test_odd_profile_values_are_refused_or_normalised(voice: Voice) -> None:
    text = voice.text.replace("median: ", "median: .nan #", 1)
    with pytest.raises(VoiceError, match="must be numbers with low <= high"):
        Voice.from_yaml(text)
    rows = [{**r, "language": "EN-us"} for r in read_passages([SITE])]
    assert Voice.from_passages(rows).language == "en"


def test_large_sites_keep_a_bounded_number_of_exemplars() -> None:
    from matcha.ml.voice import MAX_EXEMPLARS, MAX_PER_PAGE, Exemplar, _sample

    many = [Exemplar(f"p{p}#{i}", f"p{p}", "x") for p in range(100) for i in range(30)]
    kept = _sample(many)
    assert len(kept) == MAX_EXEMPLARS and len({e.page for e in kept}) == 100
    assert max(sum(1 for e in kept if e.page == p) for p in {e.page for e in kept}) <= MAX_PER_PAGE
