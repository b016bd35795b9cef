"""Plain-Python steps for the `triage` example pipeline (no model needed).

A ``script`` step receives a batch (list of record dicts) and returns the records it keeps, with
the fields it adds. It must keep each record's ``id``.
"""

from __future__ import annotations

NEGATIVE = ("late", "refund", "stopped", "twice", "broken", "cassé", "déçu", "jamais", "inadmissible",
            "remboursement", "disappointed")

TEMPLATES = {
    "en": "Dear {first}, thank you for telling us, and we are sorry. A member of our team is looking into "
          "your message today and will come back to you personally within 24 hours.",
    "fr": "Bonjour {first}, merci de nous avoir écrit, et toutes nos excuses. Une personne de notre équipe "
          "étudie votre message aujourd'hui et vous répondra personnellement sous 24 heures.",
}


def flag_complaints(batch: list[dict], words: tuple[str, ...] = NEGATIVE) -> list[dict]:
    for rec in batch:
        text = str(rec.get("text", "")).lower()
        rec["complaint"] = any(w in text for w in words)
    return batch


def draft_replies(batch: list[dict]) -> list[dict]:
    for rec in batch:
        first = str(rec.get("customer", "")).split(" ")[0] or "there"
        rec["draft"] = TEMPLATES.get(str(rec.get("lang")), TEMPLATES["en"]).format(first=first)
    return batch
