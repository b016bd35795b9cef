"""Check copy against a client's tone of voice from a Python script (no pipeline, no model server).

    python examples/voice_check.py

Learns the voice of the example brand from its pages (``examples/site``), saves the profile a
copywriter can read and edit, then scores three drafts: 0-100 (70 or more reads as the voice), with
the two or three largest deviations in words a copywriter understands.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from matcha import Voice

ROOT = Path(__file__).resolve().parents[1]

DRAFTS = [
    ("in-voice", "Meet Copper Hill, our new oolong. We roast it slowly, in small batches, on our workbench. "
                 "The leaf smells of honey and toasted nuts. Too strong? Steep it a little less. No rush. "
                 "Pour, wait, breathe in. It is your little ritual, after all."),
    ("corporate", "The Company is pleased to announce the launch of an oolong product line, which shall be "
                  "available through authorised channels; customers should consult the documentation regarding "
                  "preparation parameters and storage requirements prior to consumption."),
    ("shouting", "BEST TEA EVER!!! 🔥🔥 Buy now!!! Limited offer!!! You will LOVE it!!!"),
]


def main() -> None:
    voice = Voice.build(ROOT / "examples" / "site", name="Kettle & Kite")
    with tempfile.TemporaryDirectory() as tmp:
        path = voice.save(Path(tmp) / "kettle-and-kite.yaml")
        voice = Voice.load(path)  # what a person edited and versioned
    print(f"{voice!r}: {voice.profile.summary}")
    for result in voice.score(DRAFTS):
        print(f"\n{result.id}: {result.score}/100")
        for note in result.notes:
            print(f"  - {note}")


if __name__ == "__main__":
    main()
