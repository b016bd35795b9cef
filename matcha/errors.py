"""Matcha's exceptions.

The tree is small on purpose; catch :class:`MatchaError` to handle everything Matcha raises::

    MatchaError
    ├── PipelineError        a pipeline / connector / model file is wrong (carries located issues)
    ├── ConnectorError       a source or publisher failed
    │   └── EgressDenied     an outbound address is private/loopback and not allow-listed
    ├── ModelError           a model provider failed or is not available
    │   └── ModelUnavailable the model cannot be loaded or reached (with a fix hint)
    ├── StepError            a step failed on a record or batch (quarantined when on_error: quarantine)
    ├── RunError             a run cannot do what was asked (unknown id, wrong state)
    │   └── ApprovalError    a review decision is invalid (unknown item, already decided, hash mismatch)
    └── VoiceError           a voice profile cannot be built or read (too few pages, not a profile file)

Every message says what is wrong and how to fix it. Secrets are masked before a message is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class MatchaError(Exception):
    """Base class of every error Matcha raises on purpose."""


@dataclass(frozen=True)
class ConfigIssue:
    """One located mistake in a configuration file."""

    file: str
    line: int  # 1-based; 0 when unknown
    col: int  # 1-based; 0 when unknown
    path: str  # field path such as ``steps[2].with.model``; "" for the whole document
    message: str  # what is wrong
    hint: str = ""  # how to fix it

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}:{self.col}"
        text = self.message.rstrip(".") + "."
        if self.hint:
            text += " " + self.hint.rstrip(".") + "."
        field = f" {self.path}:" if self.path else ""
        return f"{where}:{field} {text}"


class PipelineError(MatchaError):
    """A pipeline file (or a connector / models file it uses) is invalid.

    ``issues`` lists every problem found, each with file, line, column and field path.
    """

    MAX_SHOWN = 20

    def __init__(self, issues: Sequence[ConfigIssue]):
        from dataclasses import replace

        from matcha.secrets import mask

        # a value resolved from ${env:...} may be quoted in a type error: never show it
        self.issues = [replace(i, message=mask(i.message), hint=mask(i.hint)) for i in issues]
        lines = [str(i) for i in self.issues[: self.MAX_SHOWN]]
        if len(self.issues) > self.MAX_SHOWN:
            lines.append(f"... and {len(self.issues) - self.MAX_SHOWN} more problems")
        super().__init__("\n".join(lines))

    @classmethod
    def single(
        cls, file: str, message: str, hint: str = "", *, line: int = 0, col: int = 0, path: str = ""
    ) -> PipelineError:
        return cls([ConfigIssue(file, line, col, path, message, hint)])


class ConnectorError(MatchaError):
    """A source could not be read or a publisher could not deliver."""


class EgressDenied(ConnectorError):
    """An outbound connection to a private, loopback or link-local address was refused."""


class ModelError(MatchaError):
    """A model provider call failed."""


class ModelUnavailable(ModelError):
    """A model cannot be loaded or its server cannot be reached."""

    def __init__(self, message: str, hint: str = ""):
        self.hint = hint
        super().__init__(f"{message}. {hint}" if hint else message)


class StepError(MatchaError):
    """A step failed on a record or a batch."""


class RunError(MatchaError):
    """A run cannot do what was asked (unknown id, wrong state, nothing to resume)."""


class ApprovalError(RunError):
    """A review decision is invalid."""


class VoiceError(MatchaError, ValueError):
    """A voice profile cannot be built or read (too little text, a file that is not a profile...)."""
