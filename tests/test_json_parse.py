"""core.limits.load_json parses bytes with msgspec (lean) and falls back to orjson and the
standard library: whichever parser runs, the values and the errors are the same."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annobridge.core.errors import ReadError
from annobridge.core.limits import MAX_INT_DIGITS, MAX_JSON_DEPTH, load_json

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_bytes_parse_like_orjson(value: object) -> None:
    raw = json.dumps(value).encode()
    assert load_json(raw) == orjson.loads(raw)


@pytest.mark.parametrize("text, expected", [
    ("[-9223372036854775809]", [-9.223372036854776e18]),  # past int64: a float, as orjson reads it
    ('{"a": 123456789012345678901234567890}', {"a": 1.2345678901234568e29}),
    ("  12345678901234567890123", 1.2345678901234568e22),
    ('["000000000000000000000000", 18446744073709551615]', ["000000000000000000000000", 18446744073709551615]),
])
def test_integers_beyond_64_bits_stay_floats(text: str, expected: object) -> None:
    got = load_json(text.encode())
    assert got == expected
    assert [type(x) for x in (got if isinstance(got, list) else [got])] == \
        [type(x) for x in (expected if isinstance(expected, list) else [expected])]


def test_limits_through_bytes_are_the_same_errors() -> None:
    deep = b"[" * (MAX_JSON_DEPTH + 10) + b"]" * (MAX_JSON_DEPTH + 10)
    with pytest.raises(ReadError, match=f"nested deeper than {MAX_JSON_DEPTH}"):
        load_json(deep, file="x.json")
    with pytest.raises(ReadError, match=f"an integer of 5000 digits is longer than {MAX_INT_DIGITS} digits"):
        load_json(b"[" + b"9" * 5000 + b"]", file="x.json")
    with pytest.raises(ReadError, match=r"x\.json:line 2: NaN is not a number JSON allows"):
        load_json(b'{"a": 1,\n "b": NaN}', file="x.json")
    with pytest.raises(ReadError, match=r"out of range for a double"):
        load_json(b'{"a": [1e400]}', file="x.json")
    with pytest.raises(ReadError, match="not UTF-8"):
        load_json(b'["\xff"]', file="x.json")
    with pytest.raises(ReadError, match=r"not valid JSON: .*line 1"):
        load_json(b'{"a": 1,}', file="x.json")
