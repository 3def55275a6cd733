"""core.limits.load_json parses bytes with msgspec (lean) and falls back to orjson and the
standard library: whichever parser runs, the values and the errors are the same."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annobridge.core.errors import ReadError
from annobridge.core.limits import MAX_INT_DIGITS, MAX_JSON_DEPTH, load_json, load_json_element, load_json_lazily

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


# --------------------------------------------------------------------------- one list left unparsed

wide_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=6), wide_values, max_size=4), st.lists(wide_values, max_size=6),
       st.integers(min_value=0, max_value=4))
def test_lazily_parsed_elements_are_what_load_json_reads(members: dict, elements: list, at: int) -> None:
    doc = dict(list(members.items())[:at])
    doc["annotations"] = elements
    doc.update(list(members.items())[at:])
    raw = json.dumps(doc).encode()
    lazy = load_json_lazily(raw, "annotations")
    expected = load_json(raw)
    assert lazy is not None and list(lazy) == list(expected)  # the members, in document order
    got = {**lazy, "annotations": [load_json_element(e, raw) for e in lazy["annotations"]]}
    assert got == expected
    assert json.dumps(got) == json.dumps(expected)  # and the same types (1 stays 1, 2**70 a float)


@pytest.mark.parametrize("raw", [
    b'{"info": {"a": [1]}, "images": [{"id": 1}, 2] ,"x": [3], "annotations": [ {"b": [4]} ], "z": null}',
    b'{"annotations": [{"first": 1}], "y": 2, "annotations": [{"last": 3}, 4]}',  # a member given twice: the last
    b'{"annotations": [{"first": 1}, 5], "y": 2, "annotations": []}',
    b'{"annotations": [], "images": [{"id": "a"}], "annotations": [1, {"x": [{"annotations": [2]}]}]}',
])
def test_lazily_parsed_lists_are_the_members_load_json_keeps(raw: bytes) -> None:
    """The lazy lists are split in one pass and cut out before the other members are split:
    the members, their order and a member given twice come out as load_json reads them."""
    expected = load_json(raw)
    keys = tuple(k for k in ("annotations", "images") if k in expected)
    lazy = load_json_lazily(raw, *keys)
    assert lazy is not None and list(lazy) == list(expected)
    assert {k: [load_json_element(e, raw) for e in v] if k in keys else v for k, v in lazy.items()} == expected


def test_lazily_parsed_elements_keep_the_limits_and_the_place() -> None:
    raw = b'{"images": [],\n "annotations": [{"a": 1},\n  {"area": 1e400}]}'
    lazy = load_json_lazily(raw, "annotations")
    assert lazy is not None and load_json_element(lazy["annotations"][0], raw) == {"a": 1}
    with pytest.raises(ReadError, match=r"x\.json:line 3: number 1e400 is out of range for a double \(line 3, column"):
        load_json_element(lazy["annotations"][1], raw, file="x.json", where="#/annotations/1")
    # what the whole document's parse would refuse or read otherwise goes through load_json
    assert load_json_lazily(b'{"images": [1e400], "annotations": []}', "annotations") is None
    assert load_json_lazily(b'{"annotations": [{"a": NaN}]}', "annotations") is None
    assert load_json_lazily(b'{"annotations": {}}', "annotations") is None
    assert load_json_lazily(b'[{"annotations": []}]', "annotations") is None
    assert load_json_lazily(b'{"images": []}', "annotations") is None
    deep = b'{"annotations": [' + b"[" * (MAX_JSON_DEPTH + 10) + b"]" * (MAX_JSON_DEPTH + 10) + b"]}"
    assert load_json_lazily(deep, "annotations") is None
