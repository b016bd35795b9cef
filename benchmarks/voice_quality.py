"""Does the voice score tell a voice's own writing from another writer's? ROC AUC per voice.

The protocol of the tone-of-voice issue, on every voice under ``--data-dir`` (default
``../shared/data/tone/``: one folder of pages per voice; not part of the repository): for each seed,
a voice's pages are shuffled and split 60/40; a profile is built from the passages of the 60%
(exactly as ``matcha voice build`` does); then 120-word passages of its held-out pages (positives)
and of the held-out pages of every other voice in the same language (negatives) are scored. The ROC
AUC of each voice is averaged over the seeds. Printed beside it, on the same splits:

* ``centroid``: the baseline of the issue: cosine to the centroid of the profile passages' character
  2–4-gram TF-IDF vectors;
* ``chars`` and ``words``: each of the score's two measures alone (nearest exemplars by character
  n-grams; the word model's log ratio);
* the mean Matcha score (0–100) of positives and negatives, and the share of each at 70 or more.

    .venv/bin/python benchmarks/voice_quality.py [--data-dir DIR] [--seeds 3] [--words 120]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import roc_auc_score

from matcha.connectors.pages import SUFFIXES, blocks_of, language_detector
from matcha.ml.passages import passages
from matcha.ml.voice import Profile

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "tone"
SKIP = {"sources.md", "readme.md", "license.md"}


def read_voice(folder: Path) -> dict[str, str]:
    """page id -> the page's text as the pages source reads it (blocks joined; code and markup left out)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in SUFFIXES and path.name.lower() not in SKIP:
            blocks = blocks_of(path.read_text(encoding="utf-8"), SUFFIXES[path.suffix.lower()])
            out[path.relative_to(folder).as_posix()] = "\n\n".join(b.text for b in blocks)
    return out


def page_passages(pages: dict[str, str], detect) -> list[dict]:  # type: ignore[no-untyped-def]
    from matcha.ml.passages import Block

    rows = []
    for page, text in pages.items():
        for n, t in enumerate(passages([Block(p) for p in text.split("\n\n")]), start=1):
            rows.append({"id": f"{page}#{n}", "page": page, "text": t, "language": detect(t)})
    return rows


def windows(text: str, n: int) -> list[str]:
    words = text.split()
    return [" ".join(words[i:i + n]) for i in range(0, len(words) - n + 1, n)]


def centroid(train: list[str], texts: list[str]) -> np.ndarray:
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
    x = vec.fit_transform(train)
    c = np.asarray(x.mean(axis=0)).ravel()
    return np.asarray(vec.transform(texts) @ c).ravel() / (np.linalg.norm(c) + 1e-12)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--words", type=int, default=120, help="words per scored passage")
    args = ap.parse_args()
    detect = language_detector(("en", "fr"))
    voices = {d.name: read_voice(d) for d in sorted(args.data_dir.iterdir()) if d.is_dir()}
    results: dict[str, dict[str, list[float]]] = {v: {} for v in voices}
    t0 = time.perf_counter()
    build_s: list[float] = []
    score_s: list[tuple[int, float]] = []
    for seed in range(args.seeds):
        split = {}
        for v, pages in voices.items():
            ids = sorted(pages)
            random.Random(seed).shuffle(ids)
            k = round(0.6 * len(ids))
            split[v] = (ids[:k], ids[k:])
        profiles = {}
        for v, pages in voices.items():
            t = time.perf_counter()
            profiles[v] = Profile.build(page_passages({p: pages[p] for p in split[v][0]}, detect), name=v)
            _ = profiles[v].calibration
            build_s.append(time.perf_counter() - t)
        held = {v: [w for p in split[v][1] for w in windows(voices[v][p], args.words)] for v in voices}
        for v, prof in profiles.items():
            others = [o for o in voices if o != v and profiles[o].language == prof.language]
            pos, neg = held[v], [w for o in others for w in held[o]]
            if not others or not pos:
                continue
            y = [1] * len(pos) + [0] * len(neg)
            texts = pos + neg
            raw = prof.model.raw(texts)
            t = time.perf_counter()
            scores = [s.score for s in prof.score(texts)]
            score_s.append((len(texts), time.perf_counter() - t))
            train = [e.text for e in prof.exemplars]
            r = results[v]
            zz, sd_ = prof.z(texts), prof.style_distance(texts)  # style: the measures alone
            r.setdefault("style", []).append(float(roc_auc_score(y, -sd_)))
            for name, values in (("matcha", zz), ("centroid", centroid(train, texts)),
                                 ("chars", raw[:, 0]), ("words", raw[:, 1])):
                r.setdefault(name, []).append(float(roc_auc_score(y, values)))
            r.setdefault("own", []).append(float(np.mean(scores[:len(pos)])))
            r.setdefault("other", []).append(float(np.mean(scores[len(pos):])))
            r.setdefault("own70", []).append(float(np.mean([s >= 70 for s in scores[:len(pos)]])))
            r.setdefault("other70", []).append(float(np.mean([s >= 70 for s in scores[len(pos):]])))
            r.setdefault("n", []).append(float(len(pos) + len(neg)))
    print(f"voice score ROC AUC, {args.seeds} seed(s), profile from 60% of pages, {args.words}-word passages "
          f"of held-out pages against the other voices of the language ({time.perf_counter() - t0:.0f} s; "
          f"profile build + calibration {statistics.mean(build_s):.2f} s mean; scoring with notes "
          f"{sum(n for n, _ in score_s) / sum(s for _, s in score_s):.0f} texts/s)\n")
    cols = ["matcha", "centroid", "chars", "words", "own", "other", "own70", "other70"]
    cols.append("style")
    print(f"{'voice':24s}" + "".join(f"{c:>10s}" for c in cols) + f"{'passages':>10s}")
    for v, r in results.items():
        if r:
            print(f"{v:24s}" + "".join(f"{statistics.mean(r[c]):10.3f}" if c not in ("own", "other")
                                       else f"{statistics.mean(r[c]):10.1f}" for c in cols)
                  + f"{statistics.mean(r['n']):10.0f}")
    done = [r for r in results.values() if r]
    print(f"{'mean':24s}" + "".join(f"{statistics.mean(statistics.mean(r[c]) for r in done):10.3f}"
                                    if c not in ("own", "other") else
                                    f"{statistics.mean(statistics.mean(r[c]) for r in done):10.1f}" for c in cols))
    mean_auc = {c: statistics.mean(statistics.mean(r[c]) for r in done) for c in ("matcha", "centroid")}
    print(f"\nlowest voice AUC (matcha): {min(statistics.mean(r['matcha']) for r in done):.3f}; "
          f"mean AUC against the centroid baseline: {mean_auc['matcha'] / mean_auc['centroid']:.2f}x")


if __name__ == "__main__":
    main()
