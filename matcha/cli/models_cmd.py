"""``matcha models check`` and ``matcha models fetch``."""

from __future__ import annotations

from pathlib import Path

import typer

from matcha.cli import render
from matcha.cli.main import JSON, _state, handled, models_app


@models_app.command("check")
@handled
def check(pipeline: Path = typer.Argument(..., help="Pipeline file."), as_json: bool = JSON) -> None:
    """Load or contact every model the pipeline names; print reachability and latency."""
    from dataclasses import asdict

    from matcha.models.check import check_models
    from matcha.pipeline import Pipeline

    p = Pipeline.load(pipeline, home=_state["home"])
    plan = p._plan
    results = check_models({name: plan.build_model(name) for name in plan.used_models()})
    if as_json:
        render.emit_json([asdict(r) for r in results])
    else:
        rows = [[r.name, r.provider, r.model, "yes" if r.ok else "NO",
                 f"{r.load_seconds:.2f}s" if r.load_seconds is not None else "",
                 f"{r.call_seconds * 1000:.0f} ms" if r.call_seconds is not None else "",
                 (f"{r.error}. {r.hint}" if r.hint else r.error)] for r in results]
        render.table(f"models of {p.name}", ["name", "provider", "model", "reachable", "load", "test call", "problem"],
                     rows)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


@models_app.command("fetch")
@handled
def fetch() -> None:
    """Assemble the offline model bundles (embeddings, and the GGUF when matcha[local] is installed)."""
    from matcha.models.bundle import fetch_bundles

    for what, path in fetch_bundles():
        render.out.print(f"{what}: {path}")
