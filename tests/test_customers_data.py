"""examples/data/customers.csv is exactly what its generator writes, and is well-formed."""

from __future__ import annotations

import csv
import importlib.util
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"
CSV = DATA / "customers.csv"
SCRIPT = DATA / "make_customers.py"
TOPICS = {"delivery", "deals", "loyal", "service", "ethics", "sizing"}


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_customers", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows() -> list[dict[str, str]]:
    with open(CSV, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_csv_is_the_generators_output(tmp_path: Path) -> None:
    out = tmp_path / "customers.csv"
    # -I -S: no site-packages, so the generator really needs nothing beyond the standard library
    subprocess.run([sys.executable, "-I", "-S", str(SCRIPT), "--out", str(out)], check=True, capture_output=True,
                   timeout=120)
    assert out.read_bytes() == CSV.read_bytes(), "run `python examples/data/make_customers.py` and commit the CSV"


def test_columns_and_types() -> None:
    with open(CSV, encoding="utf-8", newline="") as fh:
        assert fh.readline().strip() == "id,lang,feedback,orders,revenue,days_since_last_order,topic"
    rows = _rows()
    assert 1_100 <= len(rows) <= 1_300
    for row in rows:
        assert re.fullmatch(r"C\d{4}", row["id"]), row
        assert row["lang"] in {"fr", "en"}, row
        assert row["feedback"].strip() and not re.search(r"[{}]", row["feedback"]), row  # every slot filled
        assert int(row["orders"]) >= 1, row
        assert re.fullmatch(r"\d+\.\d{2}", row["revenue"]) and float(row["revenue"]) > 0, row
        assert 0 <= int(row["days_since_last_order"]) <= 730, row
        assert row["topic"] in TOPICS, row


def test_ids_unique_and_both_languages_and_all_topics() -> None:
    rows = _rows()
    assert len({r["id"] for r in rows}) == len(rows)
    langs = Counter(r["lang"] for r in rows)
    assert set(langs) == {"fr", "en"}
    assert min(langs.values()) / len(rows) > 0.4  # roughly half each
    topics = Counter(r["topic"] for r in rows)
    assert set(topics) == TOPICS
    assert min(topics.values()) >= 100


def test_texts_are_varied() -> None:
    rows = _rows()
    texts = [r["feedback"] for r in rows]
    assert len(set(texts)) / len(texts) > 0.95
    assert any(ch in "".join(texts) for ch in "éèàç«")  # French is written with its accents
    assert sum(len(t) < 30 for t in texts) >= 10  # a few short, noisy messages


def test_generator_has_many_fragments_per_theme_and_language() -> None:
    generator = _generator()
    assert set(generator.THEMES) == TOPICS
    for theme in TOPICS:
        for lang in ("fr", "en"):
            parts = generator.PARTS[theme, lang]
            for part in ("opening", "body", "ending"):
                fragments = parts[part]
                assert len(fragments) >= 25, (theme, lang, part)
                assert len(set(fragments)) == len(fragments), (theme, lang, part)
