"""What can be measured of a text's style, in words a copywriter uses.

:func:`style_of` gives, for one text (a passage, a draft), the rates a voice profile keeps and a
conformity note compares: sentence and paragraph length, questions and exclamations, lists, emoji,
punctuation habits, and who speaks to whom (``we``/``nous``, ``I``/``je``, ``you``; in French ``tu``
against ``vous``; impersonal when none). Rates are per sentence or per 100 words so that texts of
any length compare. French and English; other languages get the language-free figures only.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*", re.UNICODE)
_SENTENCE = re.compile(r"[^.!?…]+(?:[.!?…]+|$)")
_EMOJI = re.compile("[\U0001F300-\U0001FAFF\U00002600-\U000027BF\U0001F000-\U0001F02F]")
_LIST_LINE = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+", re.M)

# pronouns and determiners that say who speaks and to whom (lower case, elisions cut: "j'ai" -> "j")
PERSONS: dict[str, dict[str, frozenset[str]]] = {
    "en": {
        "we": frozenset({"we", "us", "our", "ours", "ourselves", "we're", "we've", "we'll", "we'd"}),
        "i": frozenset({"i", "me", "my", "mine", "myself", "i'm", "i've", "i'll", "i'd"}),
        "you": frozenset({"you", "your", "yours", "yourself", "yourselves", "you're", "you've", "you'll", "you'd"}),
    },
    "fr": {
        "we": frozenset({"nous", "notre", "nos"}),
        "i": frozenset({"je", "j", "me", "m", "moi", "mon", "ma", "mes"}),
        "tu": frozenset({"tu", "te", "t", "toi", "ton", "ta", "tes"}),
        "vous": frozenset({"vous", "votre", "vos"}),
    },
}


def sentences(text: str) -> list[str]:
    """The sentences of ``text`` (cut after ``.``, ``!``, ``?``, ``…`` and at line breaks)."""
    out = []
    for line in text.splitlines():
        line = _LIST_LINE.sub("", line).strip()
        out += [s.strip() for s in _SENTENCE.findall(line) if _WORD.search(s)]
    return out


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def style_of(text: str, language: str | None = None) -> dict[str, Any]:
    """The measurable style of ``text`` (see the module docstring); ``language``: ``en``, ``fr`` or other."""
    sents = sentences(text)
    toks = words(text)
    n_words, n_sents = len(toks), max(len(sents), 1)
    per100 = 100.0 / max(n_words, 1)
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if words(p)]
    lines = [ln for ln in text.splitlines() if ln.strip()]
    lengths = sorted(len(words(s)) for s in sents) or [0]
    ends = Counter(s[-1] for s in sents if s)
    out: dict[str, Any] = {
        "words": n_words,
        "sentence_words": sum(lengths) / len(lengths),
        "sentence_words_median": float(lengths[len(lengths) // 2]),
        "paragraph_words": n_words / max(len(paragraphs), 1),
        "word_length": sum(map(len, toks)) / max(n_words, 1),
        "questions": ends.get("?", 0) / n_sents,
        "exclamations": ends.get("!", 0) / n_sents,
        "list_lines": len(_LIST_LINE.findall(text)) / max(len(lines), 1),
        "emoji": len(_EMOJI.findall(text)) * per100,
        "commas": text.count(",") / n_sents,
        "semicolons": text.count(";") * per100,
        "colons": text.count(":") * per100,
        "parentheses": text.count("(") * per100,
        "dashes": (text.count("—") + text.count("–") + text.count(" - ")) * per100,
        "capitals": sum(1 for t in toks if len(t) > 1 and t.isupper()) * per100,
    }
    table = PERSONS.get(language or "")
    if table:
        lowered = [t.lower().replace("’", "'") for t in toks]
        lowered = [t.split("'", 1)[0] if language == "fr" and "'" in t else t for t in lowered]
        counts = {person: sum(1 for t in lowered if t in forms) for person, forms in table.items()}
        for person, c in counts.items():
            out[f"person_{person}"] = c * per100
        if language == "fr":
            address = counts["tu"] + counts["vous"]
            out["tu_share"] = counts["tu"] / address if address else None
    return out


def describe_person(style: dict[str, Any], language: str) -> str:
    """Who speaks and to whom, in a few words: "we, to you", "impersonal", "je, à vous"."""
    rates = {k.removeprefix("person_"): v for k, v in style.items() if k.startswith("person_") and v >= 0.5}
    speaker = "we" if rates.get("we", 0) >= rates.get("i", 0) and "we" in rates else "I" if "i" in rates else None
    if language == "fr":
        listener = "tu" if rates.get("tu", 0) > rates.get("vous", 0) else "vous" if "vous" in rates else None
        speaker = {"we": "nous", "I": "je"}.get(speaker or "", speaker)
    else:
        listener = "you" if "you" in rates else None
    if speaker is None and listener is None:
        return "impersonal"
    return ", to ".join(p for p in (speaker, listener) if p) if speaker else f"to {listener}"
