"""Classify texts from a Python script with Matcha's few-shot classifier (no pipeline file needed
beyond a few lines of YAML, no server: the offline embedder runs in-process).

    python examples/classify_texts.py

Labels customer messages by topic from a handful of labeled examples, and scores their
sentiment with the built-in French + English set, then prints each text with its labels.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from matcha import Pipeline

ROOT = Path(__file__).resolve().parents[1]

PIPELINE = """
name: classify-texts
steps:
  - id: topic
    type: classify
    with:
      field: text
      labels: [delivery, billing, product, question]
      examples_file: examples/data/topic_examples.csv
  - id: mood
    type: sentiment
    needs: [topic]
"""

TEXTS = [
    "My parcel has been stuck at the depot for a week.",
    "Vous m'avez facturé deux fois la même commande.",
    "The zip broke the first time I used the bag.",
    "Do you ship to Belgium?",
    "Le colis est arrivé en avance, parfait !",
]


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        pipeline = Pipeline.from_yaml(PIPELINE, base_dir=ROOT, home=home)
        run = pipeline.run(records=[{"id": str(i), "text": t} for i, t in enumerate(TEXTS, 1)])
        run.raise_for_status()
        for rec in run.records():
            print(f"{rec['label']:<9} {rec['label_score']:.2f}  {rec['sentiment']:<8}  {rec['text']}")


if __name__ == "__main__":
    main()
