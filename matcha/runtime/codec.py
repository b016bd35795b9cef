"""JSON for the run store's hot path: the standard library's C scanner and encoder, called directly.

``json.loads``/``json.dumps`` wrap the same C code in several Python calls, two regular-expression
matches and a new encoder object per call; on the small objects a step writes per record (a few
fields) that wrapper is most of the cost. Same output as ``json.dumps(obj, ensure_ascii=False,
default=str)`` and ``json.loads``; anything unusual falls back to them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json import encoder, scanner
from typing import Any

_scan: Callable[[str, int], tuple[Any, int]] = scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]
_encode: Callable[[Any, int], Any] | None = None
_c_make_encoder = getattr(encoder, "c_make_encoder", None)
if _c_make_encoder is not None:  # CPython: the C encoder, without circular-reference markers
    _encode = _c_make_encoder(None, str, encoder.encode_basestring, None, ": ", ", ", False, False, True)


def loads(text: str) -> Any:
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
