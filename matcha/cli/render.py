"""Terminal output: tables, progress bars and errors (rich on a terminal, plain text otherwise)."""

from __future__ import annotations

import json
import sys
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

# User and AI text is never markup and never an emoji shortcode (`:x:` stays `:x:`).
out = Console(soft_wrap=True, highlight=False, markup=False, emoji=False)
err = Console(stderr=True, soft_wrap=True, highlight=False, emoji=False)
if not out.is_terminal:  # piped or captured: rich would assume 80 columns and wrap table cells
    out.width = 200


# Characters a terminal acts on or does not show: controls (ANSI escapes, bells), format marks
# (bidi overrides and isolates, zero-width characters, soft hyphens, Unicode "tag" characters that
# can carry hidden instructions), line and paragraph separators, private-use and unassigned code
# points. A draft could otherwise hide words from its reviewer, or rewrite the screen.
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cn", "Cs"})


def literal(text: str) -> str:
    """``text`` as it must be shown to a reviewer: every invisible or terminal-controlling character
    made visible as an escape such as ``\\x1b`` or ``\\u202e``; newlines, tabs and all else unchanged."""
    if text.isprintable() and "\x1b" not in text:  # the common case, in C
        return text
    return "".join(_escape(c) if c not in "\n\t" and unicodedata.category(c) in _HIDDEN else c for c in text)


def _escape(char: str) -> str:
    return char.encode("unicode_escape", "backslashreplace").decode("ascii")


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def error(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(literal(message))}", markup=True, highlight=False)


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    t = Table(title=title, title_justify="left", show_edge=False)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*["" if v is None else literal(str(v)) for v in r])
    out.print(t)


@contextmanager
def progress(enabled: bool) -> Iterator[Any]:
    """A per-step progress callback: rich bars on a terminal, nothing otherwise."""
    if not enabled or not err.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bars = Progress(TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=False)
    tasks: dict[str, Any] = {}

    def update(step: str, done: int, total: int) -> None:
        if step not in tasks:
            tasks[step] = bars.add_task(step, total=total or None)
        bars.update(tasks[step], completed=done, total=total or None)

    with bars:
        yield update


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def context_value(key: str, value: Any) -> str:
    """A review context field in a few lines: lists of strings joined, lists of objects (attempts, the
    passages a draft was written from) one short line each."""
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return f"{key}: " + "; ".join(value)
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        lines = [f"{key}:"]
        for v in value:
            lines.append("  - " + ", ".join(f"{k}: {_line(x)}" for k, x in v.items() if x not in (None, "", [])))
        return "\n".join(lines)
    return f"{key}: {value}"


def _line(value: Any, width: int = 90) -> str:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = "; ".join(value)
    elif isinstance(value, list):
        return f"[{len(value)} items]"
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[:width - 3] + "..."


def run_summary(summary: dict[str, Any]) -> None:
    rows = []
    for s in summary["steps"]:
        secs = s.get("seconds")
        extra = ", ".join(f"{k} {_short(v)}" for k, v in s.items()
                          if k not in {"id", "status", "received", "out", "dropped", "quarantined", "seconds"})
        rows.append([s["id"], s["status"], s["received"], s["out"], s["dropped"], s["quarantined"],
                     f"{secs:.2f}" if secs is not None else "", extra])
    table(f"run {summary['run_id']} ({summary['pipeline']}): {summary['status']}",
          ["step", "status", "in", "out", "dropped", "quarantined", "seconds", "notes"], rows)
    out.print("counts: in = out + dropped + quarantined for every finished step "
              "(a step that makes records: in = grouped + dropped + quarantined; out counts what it made)",
              style="dim")
    if summary.get("segments"):
        table("segments", ["segment", "name", "size", "share", "keywords"],
              [[s.get("segment", s["id"]), s.get("name") or "", s.get("size"),
                f"{s['share']:.1%}" if isinstance(s.get("share"), float) else "",
                ", ".join(k[0] if isinstance(k, list) else str(k) for k in (s.get("keywords") or [])[:6])]
               for s in summary["segments"]])
    if summary.get("artifacts"):
        table("artifacts", ["name", "step", "size", "sha256", "file"],
              [[a["name"], a["step"], a["size"], a["sha256"][:12], a["path"]] for a in summary["artifacts"]])
        out.print(f"fetch one: matcha artifacts {summary['run_id']} NAME -o FILE", style="dim")
    if summary.get("error"):
        error(summary["error"])
    if summary.get("quarantine_file"):
        out.print(f"{summary['quarantined']} record(s) quarantined: {summary['quarantine_file']}")
    if summary["status"] == "waiting_for_approval":
        rid = summary["run_id"]
        out.print(f"{summary['pending_review']} item(s) wait for a human decision.\n"
                  f"  review:  matcha review {rid}\n"
                  f"  approve: matcha approve {rid} --all   (or --item ID [--edit FILE])\n"
                  f"  reject:  matcha reject {rid} --item ID --reason TEXT")
    elif summary["status"] == "running" and not summary.get("active", True):
        out.print(f"no process is executing this run (it was interrupted): matcha resume {summary['run_id']}")
    elif summary["status"] == "failed":
        out.print(f"fix the cause, then: matcha resume {summary['run_id']}")
    elif summary["status"] == "queued":
        out.print(f"queued: a `matcha worker` will drive it (or now: matcha resume {summary['run_id']})")
