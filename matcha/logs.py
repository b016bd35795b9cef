"""Logging setup: structlog to stderr, console on a terminal, JSON on request; secrets masked."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

from matcha.secrets import mask_obj


def _mask(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
    return mask_obj(dict(event))  # type: ignore[no-any-return]


class _Stderr:
    """Whatever ``sys.stderr`` is when a line is written (test runners and embedding apps swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(fmt: str = "auto", level: str = "info") -> None:
    """``fmt``: ``console``, ``json`` or ``auto`` (console on a terminal, else JSON)."""
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: Any = (structlog.processors.JSONRenderer() if fmt == "json"
                     else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.format_exc_info,
            _mask,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


def configure_library_default() -> None:
    """Library use: warnings and errors only, to stderr, unless the application configured structlog."""
    if not structlog.is_configured():
        configure("console", "warning")
