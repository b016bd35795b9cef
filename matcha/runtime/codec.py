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
from collections.abc import Callable
from json import encoder, scanner
from typing import Any

import orjson

# a digit becomes "0", what may come before a number ("[", ",", ":", whitespace) "|", a minus sign
# "-", anything else "x": a number of 19 digits is "|" then 19 "0" (digits inside a hex key are not)
_SHAPE = bytes(48 if 48 <= i <= 57 else 124 if chr(i) in "[,: \t\r\n" else 45 if i == 45 else 120
               for i in range(256))
_LONG = b"0" * 19
_LONG_NUMBER, _LONG_NEGATIVE = b"|" + _LONG, b"|-" + _LONG
_scan: Callable[[str, int], tuple[Any, int]] = scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]
_encode: Callable[[Any, int], Any] | None = None
_c_make_encoder = getattr(encoder, "c_make_encoder", None)
if _c_make_encoder is not None:  # CPython: the C encoder, without circular-reference markers
    _encode = _c_make_encoder(None, str, encoder.encode_basestring, None, ": ", ", ", False, False, True)


def loads(text: str | bytes) -> Any:
    """``json.loads(text)`` (bytes are UTF-8)."""
    raw = text.encode() if isinstance(text, str) else text
    # orjson reads integers past 64 bits as floats: a number of 19 digits or more goes to the
    # standard library (a translate and two finds: a tenth of the time of a regular expression)
    shape = raw.translate(_SHAPE)
    if _LONG_NUMBER not in shape and _LONG_NEGATIVE not in shape and not shape.lstrip(b"|-").startswith(_LONG):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # NaN, or not JSON: the standard library decides
    if isinstance(text, bytes):
        return json.loads(text)
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
