"""JSON for the run store's hot path.

Reading: orjson (a dependency of langgraph, so already installed), 2-10x the standard library on
the parts a dataset pass decodes; what it refuses (``NaN``, integers past 64 bits) goes to
``json.loads``, so the result is always the standard library's. Writing: the standard library's C
encoder called directly: ``json.dumps`` wraps the same C code in several Python calls, two
regular-expression matches and a new encoder object per call; on the small objects a step writes
per record (a few fields) that wrapper is most of the cost. Same output as ``json.dumps(obj,
ensure_ascii=False, default=str)`` (orjson writes ``NaN`` as ``null``, which would change data).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from json import encoder, scanner
from typing import Any

import orjson

_LONG_DIGITS = re.compile(r"\d{19}")
_scan: Callable[[str, int], tuple[Any, int]] = scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]
_encode: Callable[[Any, int], Any] | None = None
_c_make_encoder = getattr(encoder, "c_make_encoder", None)
if _c_make_encoder is not None:  # CPython: the C encoder, without circular-reference markers
    _encode = _c_make_encoder(None, str, encoder.encode_basestring, None, ": ", ", ", False, False, True)


def loads(text: str) -> Any:
    if _LONG_DIGITS.search(text) is None:  # orjson reads integers past 64 bits as floats
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # NaN, or not JSON: the standard library decides
    try:
        obj, end = _scan(text, 0)
    except Exception:
        return json.loads(text)  # the standard error (or leading whitespace)
    if end != len(text):
        return json.loads(text)
    return obj


def dumps(obj: Any) -> str:
    """``json.dumps(obj, ensure_ascii=False, default=str)``."""
    if _encode is None or isinstance(obj, str):
        return json.dumps(obj, ensure_ascii=False, default=str)
    return "".join(_encode(obj, 0))
