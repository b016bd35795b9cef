"""Crash points for fault-injection tests.

``MATCHA_CRASH_AT=<name>`` makes the process SIGKILL itself when it reaches ``crash_point(name)``
(``<name>#N``: the N-th time it reaches it):
the closest thing to pulling the plug, used by the test suite to prove that resumes never repeat
finished work or publish twice. Unset in normal use; costs one dict lookup.
"""

from __future__ import annotations

import os
import signal

_seen: dict[str, int] = {}


def crash_point(name: str) -> None:
    wanted = os.environ.get("MATCHA_CRASH_AT")
    if not wanted or not wanted.startswith(name):
        return
    target, _, nth = wanted.partition("#")
    if target != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
