"""Names and briefs a small model writes for segments are vetted: a copy of the prompt's example, a
repetition loop or a name another segment already has gives way to the segment's keywords."""

from __future__ import annotations

import pytest

from matcha.steps.describe import _vetted

pytestmark = pytest.mark.unit
REC = {"segment": 3, "keywords": [["colis", 0.05], ["parcel", 0.04], ["livraison", 0.03], ["box", 0.02]]}
LOOP = "Customer support, " * 20


@pytest.mark.parametrize(("name", "brief", "taken", "expected"), [
    ("Late parcels", "Customers whose parcel was late.", set(), ("Late parcels", "Customers whose parcel was late.",
                                                                  "model")),
    ("Deal hunters", "Price-sensitive customers who wait for promotions. Address them with clear offers.", set(),
     ("colis · parcel · livraison", None, "keywords")),
    ("Customer support", LOOP, set(), ("Customer support", None, "model")),
    ("Late parcels", "Fine brief.", {"late parcels"}, ("colis · parcel · livraison", "Fine brief.", "keywords")),
])
def test_vetting(name: str, brief: str, taken: set[str], expected: tuple[str, str | None, str]) -> None:
    assert _vetted(name, brief, REC, taken) == expected


def test_no_keywords_names_the_segment_by_number() -> None:
    assert _vetted("Deal hunters", None, {"segment": 7, "keywords": []}, set())[0] == "Segment 7"
