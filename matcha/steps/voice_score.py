"""``voice_score``: how well each record's text matches a voice profile.

Adds ``voice_score`` (0–100: 70 or more reads as the voice; see :mod:`matcha.ml.voice`),
``voice_notes`` (the two or three largest deviations, in a copywriter's words) and ``voice_profile``
(the sha256 of the profile scored against: a draft always says which version of the voice judged
it). ``voice`` names a ``voice_profile`` step upstream (default: the nearest one) or a profile file;
it is read once, when the step starts. A record whose text is missing or empty is quarantined with
the reason. Paired with ``generate`` and ``repeat:``, drafts under a threshold are written again.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from matcha.steps.base import (
    BatchOutcome,
    LoadContext,
    Record,
    StaticIssue,
    Step,
    StepConfig,
    StepContext,
    register_step,
)
from matcha.steps.voice_profile import check_voice_ref, is_profile_file, load_voice


class VoiceScoreConfig(StepConfig):
    voice: str | None = Field(None, description="A `voice_profile` step upstream (default: the nearest one) or a "
                              "profile file (.yaml, relative to the project root).")
    text: str = Field("draft", description="Field holding the text to score.")
    output: str = Field("voice_score", description="Field receiving the score (0-100).")
    notes: str = Field("voice_notes", description="Field receiving the notes (a list of strings).")
    profile_field: str = Field("voice_profile", description="Field receiving the profile's sha256.")


@register_step("voice_score")
class VoiceScoreStep(Step):
    Config = VoiceScoreConfig
    wants: ClassVar[dict[str, str]] = {"voice": "voice"}

    def check(self, ctx: LoadContext) -> list[StaticIssue]:
        return check_voice_ref(self.config.voice, ctx)

    def side_inputs(self) -> list[str]:
        ref = self.config.voice
        return [ref] if ref and not is_profile_file(ref) else []

    def written_fields(self) -> list[str]:
        return [self.config.output, self.config.notes, self.config.profile_field]

    def warm_up(self, ctx: StepContext) -> None:
        self._voice = load_voice(str(self.config.voice), ctx)
        _ = self._voice.profile.calibration  # once, before the first batch

    def process(self, batch: list[Record], ctx: StepContext) -> BatchOutcome:
        cfg = self.config
        out = BatchOutcome()
        ready: list[Record] = []
        for rec in batch:
            text = rec.get(cfg.text)
            if not isinstance(text, str) or not text.strip():
                what = "is missing" if text is None else "is empty" if isinstance(text, str) else \
                    f"holds {type(text).__name__}, not text"
                out.quarantined.append((rec, f"field '{cfg.text}' {what}: nothing to score"))
            else:
                ready.append(rec)
        for rec, s in zip(ready, self._voice.score([str(r[cfg.text]) for r in ready]), strict=True):
            rec[cfg.output] = s.score
            rec[cfg.notes] = s.notes
            rec[cfg.profile_field] = s.profile
            out.out.append(rec)
        return out
