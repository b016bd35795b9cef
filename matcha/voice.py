"""``Voice``: a client's tone of voice, learned from its pages, for scripts (the library side of
``matcha voice``)::

    from matcha import Voice
    voice = Voice.build("examples/site")          # folders, files or URLs
    voice.save("profile.yaml")
    for s in Voice.load("profile.yaml").score(["Our new tea ...", "..."]):
        print(s.score, s.notes)

How the profile and the score work: :mod:`matcha.ml.voice` and ``docs/tone-of-voice.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from matcha.errors import MatchaError
from matcha.ml.voice import MIN_PAGES, MIN_WORDS, Profile, VoiceError, profile_hash

__all__ = ["MIN_PAGES", "MIN_WORDS", "Voice", "VoiceError", "VoiceScore"]


@dataclass(frozen=True)
class VoiceScore:
    """One text's conformity: ``score`` 0–100 (70 or more: in the voice), ``notes``: the two or three
    largest deviations in a copywriter's words; ``profile``: the sha256 of the profile it was scored against."""

    id: str
    score: int
    notes: list[str]
    profile: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "voice_score": self.score, "voice_notes": self.notes, "voice_profile": self.profile}


class Voice:
    """A voice profile: what can be measured of a client's writing, the exemplar passages, and a
    score of new text against them. Build it from pages, or load the YAML file a person edited."""

    def __init__(self, profile: Profile, text: str | None = None, path: Path | None = None):
        self.profile = profile
        self.text = text if text is not None else profile.to_yaml()
        self.path = path

    # -- making one
    @classmethod
    def build(cls, *sources: str | Path, name: str | None = None, languages: Sequence[str] = ("en", "fr"),
              allow_hosts: Sequence[str] = (), delay: float = 1.0,
              progress: Callable[[str, int, int], None] | None = None,
              problems: list[str] | None = None) -> Voice:
        """A profile from pages: folders (read recursively) or files of ``.md``, ``.html``, ``.txt``,
        and ``http(s)`` URLs (a URL ending in ``sitemap.xml`` is read as a sitemap). Web pages are
        fetched from their own hosts only, honouring robots.txt, one request per ``delay`` seconds per
        host; ``allow_hosts`` lets private or loopback hosts through the egress guard. Pages that
        cannot be read are appended to ``problems`` (or raise when it is None). ``progress(stage, done,
        total)`` is called while reading and measuring."""
        if not sources:
            raise VoiceError("name at least one folder, file or URL of pages")
        rows = list(read_passages(sources, languages=languages, allow_hosts=allow_hosts, delay=delay,
                                  progress=progress, problems=problems))
        first = str(sources[0]).rstrip("/")
        default = Path(first).name if "://" not in first else urlsplit(first).hostname or "voice"
        return cls.from_passages(rows, name=name or default, progress=progress)

    @classmethod
    def from_passages(cls, passages: Iterable[dict[str, Any]], *, name: str = "voice",
                      progress: Callable[[str, int, int], None] | None = None) -> Voice:
        """A profile from passages ``{id, page, text, language}`` (as the ``pages`` source reads them)."""
        rows = list(passages)
        tick = (lambda n: progress("measuring", n, len(rows))) if progress else None
        profile = Profile.build(rows, name=name, progress=tick)
        return cls(profile)

    @classmethod
    def load(cls, path: str | Path) -> Voice:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise VoiceError(f"cannot read the voice profile {p}: {exc}") from None
        return cls(Profile.from_yaml(text, str(p)), text, p)

    @classmethod
    def from_yaml(cls, text: str, where: str = "profile") -> Voice:
        return cls(Profile.from_yaml(text, where), text)

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.text, encoding="utf-8")
        self.path = p
        return p

    # -- using one
    @property
    def hash(self) -> str:
        """The sha256 of the profile's YAML text: what every draft scored against it carries."""
        return profile_hash(self.text)

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def language(self) -> str:
        return self.profile.language

    def score(self, texts: str | Iterable[str] | Iterable[tuple[str, str]]) -> list[VoiceScore]:
        """Score texts (a string, strings, or ``(id, text)`` pairs; ids default to their position)."""
        items: list[tuple[str, str]] = []
        for i, t in enumerate([texts] if isinstance(texts, str) else texts):
            items.append((str(t[0]), str(t[1])) if isinstance(t, tuple) else (str(i + 1), str(t)))
        scores = self.profile.score([t for _, t in items])
        return [VoiceScore(i, s.score, s.notes, self.hash) for (i, _), s in zip(items, scores, strict=True)]

    def held_out_scores(self) -> list[int]:
        """The scores of the voice's own exemplars, each scored by a profile built without its page:
        what to expect of text truly in the voice (where to set a threshold)."""
        return self.profile.held_out_scores()

    def __repr__(self) -> str:
        return f"Voice({self.name!r}, {self.language}, {len(self.profile.exemplars)} exemplars, {self.hash[:12]})"


def read_passages(sources: Sequence[str | Path], *, languages: Sequence[str] = ("en", "fr"),
                  allow_hosts: Sequence[str] = (), delay: float = 1.0,
                  progress: Callable[[str, int, int], None] | None = None,
                  problems: list[str] | None = None) -> Iterable[dict[str, Any]]:
    """The passages of pages given as folders, files or URLs (see :meth:`Voice.build`)."""
    from matcha.connectors.pages import PagesSource

    urls = [str(s) for s in sources if "://" in str(s)]
    paths = [Path(s) for s in sources if "://" not in str(s)]
    configs: list[tuple[str, dict[str, Any]]] = []
    for p in paths:
        if not p.exists():
            raise VoiceError(f"no folder or file at {p}")
        configs.append((str(p), {"path": str(p.resolve())}))
    if urls:
        hosts = sorted({urlsplit(u).hostname or "" for u in urls})
        sitemaps = [u for u in urls if u.rstrip("/").endswith(".xml")]
        if len(sitemaps) > 1:
            raise VoiceError("give at most one sitemap URL per build")
        configs.append(("web", {"urls": [u for u in urls if u not in sitemaps],
                                "sitemap": sitemaps[0] if sitemaps else None,
                                "hosts": hosts, "allowed_hosts": list(allow_hosts), "delay": delay}))
    seen = 0
    for label, cfg in configs:
        try:
            config = PagesSource.Config(kind="pages", languages=list(languages), **cfg)  # type: ignore[arg-type]
        except ValueError as exc:
            raise VoiceError(f"{label}: {exc}") from None
        source = PagesSource(label if label == "web" else "pages", config, base_dir=Path.cwd())
        try:
            for row in source.read():
                if row.error:
                    if problems is None:
                        raise VoiceError(row.error)
                    problems.append(row.error)
                    continue
                seen += 1
                if progress:
                    progress("reading", seen, 0)
                yield dict(row.data or {})
        except MatchaError as exc:
            raise VoiceError(str(exc)) from None
