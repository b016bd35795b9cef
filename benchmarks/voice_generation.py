"""Does writing in a voice raise the voice score? Drafts with and without the conditioning, same prompts.

For each voice under ``--data-dir`` (default ``../shared/data/tone/``; not part of the repository):
its pages are split 60/40 (seeded) as in ``voice_quality.py``; a pipeline learns the profile from the
60% (``voice_profile``), takes the titles of up to ``--topics`` held-out pages as topics, and writes one
draft per topic twice with the same prompt and model: plainly (``generate``) and in the voice
(``generate`` with ``voice:``: the 3 passages nearest to the topic and the profile's rules in the
prompt). Both are scored against the profile (``voice_score``). Printed: the mean score of each,
the share at 70 or more, how many conditioned drafts copy the voice's passages (30% or more of their
8-word runs word for word: the score's copy note) and the mean without them, the mean words per
draft, and the held-out pages' own first passages as a reference of what text in the voice scores.
The model is ``--model`` (default: the offline
default generator, Gemma 3 270M base; ``{"provider": "ollama", "model": "..."}`` as JSON for another).

    .venv/bin/python benchmarks/voice_generation.py [--data-dir DIR] [--topics 6] [--model JSON] [--show]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from matcha import Pipeline
from matcha.voice import Voice, read_passages

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "tone"
SKIP = {"sources.md", "readme.md", "license.md"}
PAGE = {".md", ".markdown", ".html", ".htm", ".txt"}

PIPELINE = """
name: voice_generation
models: {models}
source: {{connector: topics}}
steps:
  - id: voice
    type: voice_profile
    with: {{pages: pages}}
  - id: plain
    type: generate
    with: {{prompt: "{{{{ topic }}}}\\n\\n", output: plain, max_tokens: 160, temperature: 0.3, stop: ["\\n\\n\\n"],
            model: writer}}
  - id: in_voice
    type: generate
    with: {{prompt: "{{{{ topic }}}}\\n\\n", output: in_voice, voice: voice, max_tokens: 160, temperature: 0.3,
            stop: ["\\n\\n\\n"], model: writer}}
  - id: score_plain
    type: voice_score
    with: {{text: plain, output: plain_score, notes: plain_notes, profile_field: plain_profile}}
  - id: score_in_voice
    type: voice_score
    with: {{text: in_voice, output: in_voice_score, notes: in_voice_notes, profile_field: in_voice_profile}}
"""


def title(path: Path) -> str:
    """A page's title: its first heading, else its file name in words."""
    text = path.read_text(encoding="utf-8", errors="replace")
    m = re.search(r"^#{1,2}\s+(.+)$", text, re.M) or re.search(r"<title>([^<]+)</title>", text, re.I)
    if m:
        return " ".join(m.group(1).split())[:120]
    stem = re.sub(r"^(content__posts__)?\d{4}-\d{2}-\d{2}-", "", path.stem)
    return stem.replace("__", " ").replace("-", " ").replace("_", " ").strip().capitalize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--topics", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--voices", nargs="*", help="only these voices (folder names)")
    ap.add_argument("--show", action="store_true", help="print each draft's start and score")
    ap.add_argument("--model", default='{"provider": "llamacpp"}', help="the writer model's config (JSON)")
    args = ap.parse_args()
    rows = []
    t0 = time.perf_counter()
    folders = sorted(d for d in args.data_dir.iterdir() if d.is_dir() and (not args.voices or d.name in args.voices))
    for folder in folders:
        pages = sorted(p for p in folder.rglob("*") if p.suffix.lower() in PAGE and p.name.lower() not in SKIP)
        random.Random(args.seed).shuffle(pages)
        k = round(0.6 * len(pages))
        train, held = pages[:k], pages[k:]
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "pages").mkdir()
            (root / "connectors").mkdir()
            for p in train:
                shutil.copy(p, root / "pages" / p.name)
            (root / "connectors" / "pages.yaml").write_text("kind: pages\npath: pages\n")
            (root / "connectors" / "topics.yaml").write_text("kind: csv\npath: topics.csv\n")
            with (root / "topics.csv").open("w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(["id", "topic"])
                for i, p in enumerate(held[:args.topics]):
                    w.writerow([f"t{i}", title(p)])
            text = PIPELINE.format(models=json.dumps({"writer": json.loads(args.model)}))
            (root / "pipeline.yaml").write_text(text)
            run = Pipeline.load(root / "pipeline.yaml", home=root / ".matcha").run().raise_for_status()
            out = list(run.records("score_in_voice"))
            voice = Voice.from_yaml(run.artifact("voice.yaml").read_text(encoding="utf-8"))
            firsts = [next(iter(read_passages([p])))["text"] for p in held[:args.topics]]
            reference = [s.score for s in voice.score(firsts)]
        plain = [r["plain_score"] for r in out]
        cond = [r["in_voice_score"] for r in out]
        copies = [any(n.startswith("copies the voice's own pages") for n in r["in_voice_notes"]) for r in out]
        own = [s for s, c in zip(cond, copies, strict=True) if not c]
        rows.append((folder.name, plain, cond, reference, sum(copies), statistics.mean(own) if own else float("nan"),
                     statistics.mean(len(r["plain"].split()) for r in out),
                     statistics.mean(len(r["in_voice"].split()) for r in out)))
        print(f"{folder.name}: plain {statistics.mean(plain):.1f}, in the voice {statistics.mean(cond):.1f}, "
              f"held-out pages {statistics.mean(reference):.1f}", flush=True)
        if args.show:
            for r in out:
                print(f"  {r['topic']!r}\n    plain {r['plain_score']:3d}: {' '.join(r['plain'].split())[:160]!r}"
                      f"\n    voice {r['in_voice_score']:3d}: {' '.join(r['in_voice'].split())[:160]!r}")
    print(f"\nvoice score of drafts written plainly and in the voice, same prompts ({args.model}; "
          f"{time.perf_counter() - t0:.0f} s)\n")
    print(f"{'voice':24s}{'plain':>8s}{'in voice':>10s}{'lift':>7s}{'≥70 plain':>11s}{'≥70 voice':>11s}"
          f"{'copies':>8s}{'voice w/o copies':>18s}{'words':>13s}{'held-out':>10s}")
    for name, plain, cond, ref, n_copies, own, wp, wc in rows:
        print(f"{name:24s}{statistics.mean(plain):8.1f}{statistics.mean(cond):10.1f}"
              f"{statistics.mean(cond) - statistics.mean(plain):+7.1f}"
              f"{statistics.mean(s >= 70 for s in plain):11.0%}{statistics.mean(s >= 70 for s in cond):11.0%}"
              f"{n_copies:5d}/{len(cond):<2d}{own:18.1f}{wp:7.0f}/{wc:<5.0f}{statistics.mean(ref):10.1f}")
    allp = [s for r in rows for s in r[1]]
    allc = [s for r in rows for s in r[2]]
    print(f"{'mean':24s}{statistics.mean(allp):8.1f}{statistics.mean(allc):10.1f}"
          f"{statistics.mean(allc) - statistics.mean(allp):+7.1f}"
          f"{statistics.mean(s >= 70 for s in allp):11.0%}{statistics.mean(s >= 70 for s in allc):11.0%}")


if __name__ == "__main__":
    main()
