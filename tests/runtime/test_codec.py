"""The run store's JSON: whatever decoder runs, the result is the standard library's."""

from __future__ import annotations

import json

import pytest

from matcha.runtime import codec

CASES = [
    '{"a": 1, "b": [1.5, -0.0, 1e-07, 1.5e+300], "c": "é", "d": null, "e": true}',
    '[1, NaN, Infinity, -Infinity]',  # orjson refuses these: the standard library reads them
    '{"a": 123456789012345678901234567890}',  # past 64 bits: an int, not a float
    '[-123456789012345678901234567890, 9223372036854775807, 18446744073709551615]',
    '123456789012345678901234567890',
    '-123456789012345678901234567890',
    '{"key": "emb:5b9446d53e4f3c7dd4379809123456789012345678e329f0e2"}',  # digits inside a string
    '{"a": 1, "a": 2}',
    ' [1] ',
    '"text"',
]


@pytest.mark.parametrize("text", CASES)
def test_loads_is_the_standard_library(text: str) -> None:
    expected = json.loads(text)
    for given in (text, text.encode()):
        got = codec.loads(given)
        assert json.dumps(got) == json.dumps(expected)
        assert type(got) is type(expected)


def test_big_integers_stay_integers() -> None:
    assert codec.loads('{"a": 123456789012345678901234567890}')["a"] == 123456789012345678901234567890
    assert isinstance(codec.loads("[18446744073709551616]")[0], int)


@pytest.mark.parametrize("text", ["", "[1,", "{'a': 1}", "[1] x"])
def test_bad_json_raises_the_standard_error(text: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        codec.loads(text)


@pytest.mark.parametrize("obj", [{"a": [1, 2.5, None, True, "é"]}, [float("nan")], {"k": {"n": [1, {"m": 2}]}}])
def test_dumps_matches_json_dumps(obj: object) -> None:
    assert codec.dumps(obj) == json.dumps(obj, ensure_ascii=False, default=str)
