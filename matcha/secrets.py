"""``${env:NAME}`` references and secret masking.

Secrets only ever come from the environment. Every value resolved from an ``${env:...}``
reference is remembered here so that logs, errors and run records can mask it.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any

ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
MASK = "***"

_lock = threading.Lock()
_secrets: set[str] = set()
_longest_first: tuple[str, ...] = ()  # rebuilt on registration: mask() runs on every stored string


MIN_LENGTH = 6  # shorter values ("true", "8080") are not secrets, and masking them would mangle ordinary text


def register_secret(value: str) -> None:
    """Remember ``value`` so that :func:`mask` hides it. Values shorter than :data:`MIN_LENGTH` are ignored."""
    if value and len(value) >= MIN_LENGTH:
        global _longest_first
        with _lock:
            if value not in _secrets:
                _secrets.add(value)
                _longest_first = tuple(sorted(_secrets, key=len, reverse=True))


def masking() -> bool:
    """Whether any secret is known (else :func:`mask` returns text as it is)."""
    return bool(_longest_first)


def mask(text: str) -> str:
    """Replace every known secret value in ``text`` with ``***``."""
    if not _longest_first or not text:
        return text
    for value in _longest_first:  # a tuple is replaced, never mutated: no lock needed to read it
        text = text.replace(value, MASK)
    return text


def mask_obj(obj: Any) -> Any:
    """Mask secrets inside nested dicts / lists / strings (string values only: structure is kept)."""
    if not _longest_first:
        return obj
    if isinstance(obj, str):
        return mask(obj)
    if isinstance(obj, dict):
        return {k: mask_obj(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [mask_obj(v) for v in obj]
    return obj


def env_refs(text: str) -> list[str]:
    """The names of the environment variables referenced in ``text``."""
    return ENV_REF.findall(text)


def resolve(text: str, environ: dict[str, str] | None = None) -> str:
    """Substitute every ``${env:NAME}`` in ``text``; raise ``KeyError(name)`` for a missing one."""
    env = os.environ if environ is None else environ

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in env:
            raise KeyError(name)
        value = env[name]
        register_secret(value)
        return value

    return ENV_REF.sub(sub, text)


def env_secret(name: str, environ: dict[str, str] | None = None) -> str | None:
    """Read a secret by env var name (``None`` when unset) and register it for masking."""
    env = os.environ if environ is None else environ
    value = env.get(name)
    if value is not None:
        register_secret(value)
    return value
