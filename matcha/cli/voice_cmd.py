"""``matcha voice build``, ``matcha voice show`` and ``matcha voice score``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import typer

from matcha.cli import render
from matcha.cli.main import JSON, handled, voice_app
from matcha.errors import VoiceError


@voice_app.command("build")
@handled
def build(
    pages: list[str] = typer.Argument(..., help="Folders or files (.md, .html, .txt) or http(s) URLs of the client's "
                                                "pages (a URL ending in .xml is read as a sitemap)."),
    output: Path = typer.Option(..., "-o", "--output", help="The profile file to write (YAML)."),
    name: str | None = typer.Option(None, "--name", help="The voice's name (default: the folder or host)."),
    languages: str = typer.Option("en,fr", "--languages", help="Languages a passage is detected among (comma "
                                  "separated); the profile keeps the most common one."),
    allow_host: list[str] = typer.Option([], "--allow-host", help="Let a private or loopback host through the egress "
                                         "guard (repeat for several)."),
    delay: float = typer.Option(1.0, "--delay", min=0, max=60, help="Seconds between two requests to one host."),
) -> None:
    """Learn a voice from pages and write its profile: a YAML file to read, edit and version."""
    from matcha.voice import Voice

    problems: list[str] = []
    with render.progress(True) as update:
        voice = Voice.build(*pages, name=name, languages=[x.strip() for x in languages.split(",") if x.strip()],
                            allow_hosts=allow_host, delay=delay, progress=update, problems=problems)
        if update:
            update("calibrating", 0, 1)
        held = voice.held_out_scores()
        if update:
            update("calibrating", 1, 1)
    voice.save(output)
    for p in problems:
        render.err.print(render.literal(f"left out: {p}"))
    built = voice.profile.built
    render.out.print(render.literal(
        f"wrote {output}: voice '{voice.name}' ({voice.language}), {built['pages']} pages, {built['passages']} "
        f"passages, {built['words']:,} words; sha256 {voice.hash[:12]}"))
    render.out.print(render.literal(f"  {voice.profile.summary}"))
    render.out.print(render.literal(_held_out_line(held)))
    render.out.print(f"next: matcha voice show {output}  |  matcha voice score {output} \"some text\"", style="dim")


def _held_out_line(held: list[int]) -> str:
    if not held:
        return ""
    median, low = held[len(held) // 2], held[len(held) // 10]
    return (f"  the voice's own passages, each scored by a profile built without its page: median {median}, "
            f"10th percentile {low} (text truly in the voice scores about this)")


@voice_app.command("show")
@handled
def show(profile: Path = typer.Argument(..., help="A profile file (matcha voice build)."),
         as_json: bool = JSON) -> None:
    """Print what a profile holds: the measures, vocabulary, phrases, rules and how its own passages score."""
    from matcha.ml.voice import MEASURES
    from matcha.voice import Voice

    voice = Voice.load(profile)
    p = voice.profile
    held = voice.held_out_scores()
    if as_json:
        render.emit_json({**p.to_dict(), "sha256": voice.hash, "held_out_scores": held,
                          "exemplars": [{"id": e.id, "page": e.page} for e in p.exemplars]})
        return
    render.out.print(render.literal(f"voice '{p.name}' ({p.language}) from {profile}, sha256 {voice.hash[:12]}: "
                                    f"{p.built.get('pages', '?')} pages, {len(p.exemplars)} exemplar passages"))
    render.out.print(render.literal(f"  {p.summary}"))
    rows = [[MEASURES[k][0], f"{r['median']:.3g}", f"{r['low']:.3g} – {r['high']:.3g}"] for k, r in p.measures.items()]
    render.table("measures (over the exemplar passages)", ["what", "median", "usual range (25th-75th percentile)"],
                 rows)
    render.out.print(render.literal("vocabulary: " + ", ".join(p.vocabulary)))
    render.out.print(render.literal("phrases: " + "; ".join(p.phrases)))
    for kind, label in (("do", "do"), ("dont", "don't")):
        for rule in p.rules.get(kind, []):
            render.out.print(render.literal(f"{label}: {rule}"))
    if p.index:
        render.out.print(render.literal(f"exemplars indexed in {p.index.get('connector')}/{p.index.get('collection')} "
                                        f"({p.index.get('model')})"))
    render.out.print(render.literal(_held_out_line(held).strip()))


@voice_app.command("score")
@handled
def score(
    profile: Path = typer.Argument(..., help="A profile file (matcha voice build)."),
    text: str | None = typer.Argument(None, help="The text to score (or --input FILE)."),
    input_file: Path | None = typer.Option(None, "--input", help="A CSV or JSONL file with `id` and `text`."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list: one {id, voice_score, voice_notes, "
                                 "voice_profile} per input."),
) -> None:
    """Score texts against a voice: 0-100 (70 or more reads as the voice) and the largest deviations."""
    from matcha.voice import Voice

    if (text is None) == (input_file is None):
        raise VoiceError("give the text to score, or --input FILE (a CSV or JSONL with `id` and `text`), not both")
    voice = Voice.load(profile)
    items: list[tuple[str, str | None]] = [("1", text)] if text is not None else read_items(input_file)  # type: ignore[arg-type]
    scored = {s.id: s for s in voice.score([(i, t) for i, t in items if t])}
    results: list[dict[str, Any]] = []
    for i, t in items:
        s = scored.get(i) if t else None
        results.append(s.to_dict() if s else {"id": i, "voice_score": None, "voice_notes": ["no text to score"],
                                              "voice_profile": voice.hash})
    if as_json:
        render.emit_json(results)
        return
    render.table(f"voice '{voice.name}' ({voice.hash[:12]})", ["id", "score", "notes"],
                 [[r["id"], "" if r["voice_score"] is None else r["voice_score"], "; ".join(r["voice_notes"])]
                  for r in results])


def read_items(path: Path) -> list[tuple[str, str | None]]:
    """``(id, text)`` of each row of a CSV (header with `text`, and `id`) or JSONL file; a row without an
    id is numbered by its line."""
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise VoiceError(f"cannot read {path}: {exc}") from None
    rows: list[tuple[int, dict[str, Any]]] = []
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        for n, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise VoiceError(f"{path}, line {n}: not JSON ({exc.msg}); each line must be an object with "
                                 "`id` and `text`") from None
            if not isinstance(obj, dict):
                raise VoiceError(f"{path}, line {n}: a JSON object with `id` and `text` is expected")
            rows.append((n, obj))
    else:
        reader = csv.DictReader(io.StringIO(raw, newline=""))
        if not reader.fieldnames or "text" not in reader.fieldnames:
            raise VoiceError(f"{path}: no `text` column (columns: {', '.join(reader.fieldnames or []) or 'none'}); "
                             "give a CSV with a header holding `id` and `text`, or a .jsonl file")
        rows = [(reader.line_num, dict(r)) for r in reader]  # a quoted text may span lines: its last line
    out: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    for n, r in rows:
        rid = str(r.get("id") or f"line {n}")
        if rid in seen:
            raise VoiceError(f"{path}, line {n}: id '{rid}' is used twice; give each row its own id")
        seen.add(rid)
        value = r.get("text")
        out.append((rid, str(value) if isinstance(value, str | int | float) and str(value).strip() else None))
    return out
