"""The ``matcha`` command. Heavy libraries are imported inside commands so ``--help`` stays fast."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from matcha.cli import render

app = typer.Typer(name="matcha", help="Self-hosted multi-AI pipelines with a human approval gate.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
runs_app = typer.Typer(help="List, inspect and export runs.", invoke_without_command=True)
models_app = typer.Typer(help="Check and fetch the models pipelines use.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(models_app, name="models")
voice_app = typer.Typer(help="Learn a client's tone of voice from its pages and score texts against it.",
                        no_args_is_help=True)
app.add_typer(voice_app, name="voice")
users_app = typer.Typer(help="Accounts of the review web page (matcha serve).", no_args_is_help=True)
app.add_typer(users_app, name="users")

F = TypeVar("F", bound=Callable[..., Any])
_state: dict[str, Any] = {"home": None}

JSON = typer.Option(False, "--json", help="Print one JSON object (for scripts).")
EXECUTOR = typer.Option(None, "--executor", help="Where model and script steps run: local or ray (overrides the "
                                                 "pipeline's settings.executor; RAY_ADDRESS names the cluster).")


def _use_executor(executor: str | None) -> None:
    """``--executor``: passed on as ``$MATCHA_EXECUTOR`` (the processes and runs this one starts see it too)."""
    if executor is not None:
        from matcha.errors import RunError

        if executor not in ("local", "ray"):
            raise RunError(f"--executor {executor!r}: use local or ray")
        os.environ["MATCHA_EXECUTOR"] = executor


LOG_FORMATS = ("console", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")


def handled(fn: F) -> F:
    """User mistakes become one clear message and exit code 1, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from matcha.errors import MatchaError
        from matcha.secrets import mask

        try:
            return fn(*args, **kwargs)
        except MatchaError as exc:
            render.error(mask(str(exc)))
            raise typer.Exit(1) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            # A bug, not a user mistake: one line, and the traceback only in debug logs.
            import structlog

            structlog.get_logger("matcha.cli").debug("internal error", exc_info=True)
            render.error(mask(f"internal error: {type(exc).__name__}: {exc}"[:500]) +
                         ". This is a bug in Matcha; please report it (--log-level debug shows the traceback)")
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def main_options(
    log_format: str = typer.Option("console", "--log-format", help="console or json (logs go to stderr)."),
    log_level: str | None = typer.Option(None, "--log-level",
                                         help="debug, info, warning or error (default: warning on a terminal, "
                                              "where progress bars show the steps; info otherwise)."),
    home: Path | None = typer.Option(None, "--home", envvar="MATCHA_HOME",
                                     help="State folder for runs (default ./.matcha)."),
) -> None:
    from matcha.logs import configure

    if log_format not in LOG_FORMATS:
        raise typer.BadParameter(f"'{log_format}' is not one of: {', '.join(LOG_FORMATS)}",
                                 param_hint="--log-format")
    if log_level is not None and log_level.lower() not in LOG_LEVELS:
        raise typer.BadParameter(f"'{log_level}' is not one of: {', '.join(LOG_LEVELS)}", param_hint="--log-level")
    if log_level is None:
        log_level = "warning" if render.err.is_terminal and log_format == "console" else "info"
    configure(log_format, log_level.lower())
    _state["home"] = home


def _open_run(run_id: str) -> Any:
    from matcha.runtime.run import Run

    return Run.open(run_id, _state["home"])


def _finish(run: Any, as_json: bool) -> None:
    summary = run.summary()
    if as_json:
        render.emit_json(summary)
    else:
        render.run_summary(summary)
    if run.status == "failed":
        raise typer.Exit(1)


@app.command()
@handled
def validate(pipelines: list[Path] = typer.Argument(..., help="Pipeline files to check.")) -> None:
    """Check pipeline files (syntax, fields, graph, models, connectors and the approval gate)."""
    from matcha.errors import PipelineError
    from matcha.pipeline import Pipeline

    failed = False
    for path in pipelines:
        try:
            p = Pipeline.load(path)
        except PipelineError as exc:
            render.error(f"{path} is invalid:\n{exc}")
            failed = True
        else:
            render.out.print(f"{path}: ok ({len(p.steps)} steps)")
    if failed:
        raise typer.Exit(1)


@app.command()
@handled
def run(
    pipeline: Path = typer.Argument(..., help="Pipeline file."),
    input: Path | None = typer.Option(None, "--input", "-i", help="Read records from this CSV/JSONL file instead."),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of the --input file, e.g. latin-1."),
    delimiter: str | None = typer.Option(None, "--delimiter",
                                         help="Field separator of a CSV --input file (default ',')."),
    run_id: str | None = typer.Option(None, "--run-id",
                                      help="Choose the run id (letters, digits, '.', '_', '-'; default: time + "
                                           "random)."),
    queue: bool = typer.Option(False, "--queue", help="Only queue the run (status queued): a `matcha worker` "
                                                      "drives it."),
    executor: str | None = EXECUTOR,
    as_json: bool = JSON,
) -> None:
    """Run a pipeline until it finishes, fails or pauses for approval."""
    from matcha.pipeline import Pipeline

    _use_executor(executor)

    p = Pipeline.load(pipeline, home=_state["home"])
    with render.progress(not as_json and not queue) as progress:
        r = p.run(source=input, run_id=run_id, progress=progress, encoding=encoding, delimiter=delimiter,
                  queue=queue)
    _finish(r, as_json)


@app.command()
@handled
def worker(
    interval: float = typer.Option(30.0, "--interval", min=0.1, help="Seconds between looks at the run store."),
    grace: float = typer.Option(30.0, "--grace", min=0.0,
                                help="A run marked running is taken over once no process has held it this long."),
    once: bool = typer.Option(False, "--once", help="Drive what waits now, then exit."),
    executor: str | None = EXECUTOR,
    as_json: bool = JSON,
) -> None:
    """Drive queued runs, runs whose process died, and runs whose items are all decided (several
    workers may share one run store; each run is driven by one of them at a time)."""
    import signal

    from matcha.runtime.run import Workspace
    from matcha.runtime.worker import work, work_once

    _use_executor(executor)
    ws = Workspace(_state["home"])
    if once:
        driven = work_once(ws, grace)
        if as_json:
            render.emit_json({"driven": driven})
        else:
            render.out.print(f"drove {len(driven)} run(s): {', '.join(driven) or 'none'}")
        return
    stopping: list[int] = []
    # SIGTERM (docker stop, systemd) ends the loop after the run in progress; a run cut short by a
    # SIGKILL later is taken over by another worker from its last checkpoint
    signal.signal(signal.SIGTERM, lambda signum, _frame: stopping.append(signum))
    work(ws, interval=interval, grace=grace, stop=lambda: bool(stopping))


@app.command()
@handled
def resume(run_id: str = typer.Argument(..., help="Run id."), executor: str | None = EXECUTOR,
           as_json: bool = JSON) -> None:
    """Continue a run from its last completed step (after a crash, a failure or approval)."""
    _use_executor(executor)
    r = _open_run(run_id)
    with render.progress(not as_json) as progress:
        r = r.resume(progress=progress)
    _finish(r, as_json)


@runs_app.callback()
@handled
def runs_list(ctx: typer.Context, as_json: bool = JSON, limit: int = typer.Option(20, help="How many.")) -> None:
    """List recent runs."""
    if ctx.invoked_subcommand:
        return
    import time

    from matcha.runtime.run import Run, Workspace

    ws = Workspace(_state["home"])
    rows = ws.store.list_runs(limit)
    interrupted = {r.run_id for r in rows if r.status == "running" and not Run(ws, r).active}
    if as_json:
        render.emit_json([{"run_id": r.run_id, "pipeline": r.name, "status": r.status,
                           "active": r.status == "running" and r.run_id not in interrupted,
                           "created_at": r.created_at} for r in rows])
        return
    render.table("runs", ["run", "pipeline", "status", "started"],
                 [[r.run_id, r.name, r.status + (" (interrupted: resume it)" if r.run_id in interrupted else ""),
                   time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created_at))] for r in rows])


@runs_app.command("show")
@handled
def runs_show(run_id: str = typer.Argument(..., help="Run id."), as_json: bool = JSON) -> None:
    """Status, per-step counts and timings, quarantine file."""
    r = _open_run(run_id)
    if as_json:
        render.emit_json(r.summary())
    else:
        render.run_summary(r.summary())


@runs_app.command("export")
@handled
def runs_export(
    run_id: str = typer.Argument(..., help="Run id."),
    step: str | None = typer.Option(None, "--step", help="Records as they left this step (default: all fields)."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl or csv."),
    output: Path | None = typer.Option(None, "--output", "-o", help="File to write (default: stdout)."),
) -> None:
    """Every record of a run with the fields each step added."""
    from matcha.runtime.export import export_records

    r = _open_run(run_id)
    n = export_records(r.records(step), fmt, output)
    if output:
        render.err.print(f"wrote {n} records to {output}")


@runs_app.command("prune")
@handled
def runs_prune(
    older_than: int | None = typer.Option(None, "--older-than", help="Delete runs older than this many days."),
    keep: int | None = typer.Option(None, "--keep", help="Keep only the most recent N runs."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be deleted; delete nothing."),
    as_json: bool = JSON,
) -> None:
    """Delete old runs (never one waiting for approval or being executed), their checkpoints, artifacts
    and the cached vectors and generations no remaining run uses."""
    from matcha.errors import RunError
    from matcha.runtime.prune import prune
    from matcha.runtime.run import Workspace

    if older_than is None and keep is None:
        raise RunError("say which runs to delete: --older-than DAYS and/or --keep N")
    report = prune(Workspace(_state["home"]), older_than_days=older_than, keep=keep, dry_run=dry_run)
    if as_json:
        render.emit_json(report)
        return
    verb = "would delete" if dry_run else "deleted"
    render.out.print(f"{verb} {len(report['runs'])} run(s): {', '.join(report['runs']) or 'none'}; "
                     f"{report['cache_entries']} cache entries; kept {report['kept']} run(s)"
                     + (f" ({report['waiting']} waiting for approval)" if report["waiting"] else ""))


@app.command()
@handled
def artifacts(
    run_id: str = typer.Argument(..., help="Run id."),
    name: str | None = typer.Argument(None, help="Artifact name (omit to list them)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the artifact here."),
    as_json: bool = JSON,
) -> None:
    """List the files a run produced (reports, profiles), or fetch one (checked against its sha256)."""
    import shutil

    r = _open_run(run_id)
    if name is None:
        rows = r.summary()["artifacts"]
        if as_json:
            render.emit_json(rows)
        else:
            render.table(f"artifacts of {r.id}", ["name", "step", "size", "sha256", "file"],
                         [[a["name"], a["step"], a["size"], a["sha256"], a["path"]] for a in rows])
        return
    path = r.artifact(name)
    if output is None:
        render.out.print(str(path))
        return
    shutil.copyfile(path, output)
    render.err.print(f"wrote {name} to {output}")


@app.command()
@handled
def review(run_id: str = typer.Argument(..., help="Run id."), as_json: bool = JSON,
           all_items: bool = typer.Option(False, "--all", help="Show decided items too."),
           limit: int = typer.Option(50, "--limit", help="Show at most this many items.")) -> None:
    """List the items waiting for a decision (the first --limit of them)."""
    from matcha.runtime.run import as_dicts

    r = _open_run(run_id)
    items = r.items(limit=limit) if all_items else r.pending(limit=limit)
    if as_json:
        render.emit_json(as_dicts(items))
        return
    if not items:
        render.out.print(f"run {r.id} has no pending items (status: {r.status})")
        return
    lit = render.literal  # what the reviewer reads is exactly what is stored: controls shown, never acted on
    for it in items:
        render.out.rule(lit(f"{it.id}  [{it.step}] {it.status}"))
        for k, v in it.context.items():
            render.out.print(lit(render.context_value(k, v)), style="dim")
        render.out.print(lit(it.final_text or it.ai_text), highlight=False)
    total = r.pending_count() if not all_items else len(items)
    more = f" (showing {len(items)} of {total}: --limit N)" if total > len(items) else ""
    render.out.print(f"\n{len(items)} item(s){more}. approve: matcha approve {r.id} --item ID [--edit FILE] | --all; "
                     f"reject: matcha reject {r.id} --item ID --reason TEXT")


@app.command()
@handled
def approve(
    run_id: str = typer.Argument(..., help="Run id."),
    item: list[str] | None = typer.Option(None, "--item", help="Item id (repeatable)."),
    all_items: bool = typer.Option(False, "--all", help="Approve every pending item."),
    edit: Path | None = typer.Option(None, "--edit", help="File whose text replaces the AI text (one item)."),
    step: str | None = typer.Option(None, "--step", help="Approval step, when an item is pending in several."),
    reviewer: str | None = typer.Option(None, "--reviewer", envvar="MATCHA_REVIEWER", help="Your name."),
    as_json: bool = JSON,
) -> None:
    """Approve items; when none is left pending, the run continues to publish."""
    from matcha.errors import ApprovalError

    if not item and not all_items:
        raise ApprovalError("say what to approve: --item ID (repeatable) or --all")
    text = None
    if edit is not None:
        try:
            # editors end files with a newline; it is not part of the reviewer's text
            text = edit.read_text(encoding="utf-8").removesuffix("\n")
        except OSError as exc:
            raise ApprovalError(f"cannot read edit file {edit}: {exc.strerror}") from None
    r = _open_run(run_id)
    with render.progress(not as_json) as progress:
        r = r.approve(item, all=all_items, edit=text, step=step, reviewer=reviewer, progress=progress)
    _finish(r, as_json)


@app.command()
@handled
def reject(
    run_id: str = typer.Argument(..., help="Run id."),
    item: str = typer.Option(..., "--item", help="Item id."),
    reason: str = typer.Option(..., "--reason", help="Why (kept with the decision)."),
    step: str | None = typer.Option(None, "--step", help="Approval step, when an item is pending in several."),
    reviewer: str | None = typer.Option(None, "--reviewer", envvar="MATCHA_REVIEWER", help="Your name."),
    as_json: bool = JSON,
) -> None:
    """Reject an item; it will never be published."""
    with render.progress(not as_json) as progress:
        r = _open_run(run_id).reject(item, reason=reason, step=step, reviewer=reviewer, progress=progress)
    _finish(r, as_json)


@app.command()
@handled
def graph(pipeline: Path = typer.Argument(..., help="Pipeline file.")) -> None:
    """Print the step graph as Mermaid text."""
    from matcha.pipeline import Pipeline

    render.out.print(Pipeline.load(pipeline).mermaid(), highlight=False, markup=False)


@app.command()
@handled
def schema(output: Path | None = typer.Option(None, "--output", "-o", help="Write here (default: stdout).")) -> None:
    """Write the JSON Schema of pipeline files (for editor completion)."""
    import json

    from matcha.spec.schema import pipeline_schema

    text = json.dumps(pipeline_schema(), indent=2) + "\n"
    if output:
        output.write_text(text, encoding="utf-8")
        render.err.print(f"wrote {output}")
    else:
        sys.stdout.write(text)


def main() -> None:
    from matcha.cli import models_cmd, serve_cmd, voice_cmd  # noqa: F401 - register their commands

    app()

