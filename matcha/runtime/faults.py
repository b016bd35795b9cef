"""Crash points for fault-injection tests.

``MATCHA_CRASH_AT=<name>`` makes the process SIGKILL itself when it reaches ``crash_point(name)``:
the closest thing to pulling the plug, used by the test suite to prove that resumes never repeat
finished work or publish twice. Unset in normal use; costs one dict lookup.
"""

from __future__ import annotations

import os
import signal


def crash_point(name: str) -> None:
    if os.environ.get("MATCHA_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
