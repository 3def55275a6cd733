"""The metadata engine (core/metadata.py): kinds, inference per scope, conflicts, updates, tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annobridge.core.errors import MetadataTypeError, ReadError
from annobridge.core.metadata import (
    MISSING,
    TEXT_THRESHOLD,
    ScopeSchema,
    bool_to_string,
    check_consistent,
    flatten,
    geo_point,
    get_path,
    infer_fields,
    infer_schema,
    merge_metadata,
    parse_cell,
    read_metadata_table,
    replace_metadata,
    set_path,
    value_kind,
    widen,
)
from annobridge.core.model import (
    BoxAnnotation,
    DatasetItem,
    IndexMask,
    Scene,
    Segment,
    SegmentationAnnotation,
)


def test_value_kinds_never_take_a_bool_for_a_number() -> None:
    assert [value_kind(v) for v in (None, True, 1, 1.5, "a", [1], {"a": 1})] == [
        "null", "boolean", "numeric", "numeric", "string", "list", "dict"]
    assert value_kind({"lat": 48.8, "lon": 2.3}) == "geo"
    assert value_kind({"latitude": -33, "longitude": 151.2}) == "geo"
    assert value_kind({"lat": 100, "lon": 0}) == "dict"  # out of range: not a coordinate
    assert value_kind({"lat": True, "lon": 0}) == "dict"
    assert geo_point({"latitude": 1, "longitude": 2, "alt": 3}) == (1.0, 2.0)


def test_flatten_gives_dotted_paths_keeping_reserved_and_geo_whole() -> None:
    md = {"weather": {"temperature": 10.5, "sky": {"cover": "low"}}, "gps": {"lat": 1.0, "lon": 2.0},
          "context_attachments": [{"attachment": "s3://a.png"}], "camera_params": {"fx": 1.0}, "e": {}}
    assert dict(flatten(md)) == {"weather.temperature": 10.5, "weather.sky.cover": "low",
                                 "gps": {"lat": 1.0, "lon": 2.0},
                                 "context_attachments": [{"attachment": "s3://a.png"}],
                                 "camera_params": {"fx": 1.0}, "e": {}}
    assert dict(flatten({"gps": {"lat": 1.0, "lon": 2.0}}, expand_geo=True)) == {"gps.lat": 1.0, "gps.lon": 2.0}


def test_inferred_types_and_text_threshold() -> None:
    fields = infer_fields([(f"i{n}", {"n": n, "f": n + 0.5 if n % 2 else n, "s": f"v{n % 3}", "b": n % 2 == 0,
                                      "l": [n], "d": {}, "z": None,
                                      "context_attachments": [{"attachment": "u"}]}) for n in range(6)])
    assert {p: f.inferred for p, f in fields.items()} == {
        "n": "numeric-int", "f": "numeric-float", "s": "categorical", "b": "boolean", "l": "list",
        "d": "dict", "z": "null", "context_attachments": "context_attachments"}
    at = infer_fields([(f"i{n}", {"s": f"v{n}"}) for n in range(TEXT_THRESHOLD)])
    assert at["s"].inferred == "categorical"
    over = infer_fields([(f"i{n}", {"s": f"v{n}"}) for n in range(TEXT_THRESHOLD + 1)])
    assert over["s"].inferred == "text"


def test_conflicts_name_key_both_types_and_example_items() -> None:
    fields = infer_fields([("a", {"w": {"t": "warm"}}), ("b", {"w": {"t": None}}), ("c", {"w": {"t": 21}})])
    with pytest.raises(MetadataTypeError, match=r'"w\.t" is a string on item "a" but a number on item "c"'):
        check_consistent(fields)
    ok = infer_fields([("a", {"t": 1}), ("b", {"t": 2.5}), ("c", {"t": None})])
    check_consistent(ok)  # ints on a float key are widened, nulls never conflict
    assert ok["t"].inferred == "numeric-float"
    assert widen(1, "numeric-float") == 1.0 and isinstance(widen(1, "numeric-float"), float)
    assert widen(True, "numeric-float") is True
    assert bool_to_string(True) == "true" and bool_to_string(False) == "false"


def test_infer_schema_keeps_scopes_apart() -> None:
    mask = IndexMask.from_array(np.ones((2, 2), dtype=np.uint8))
    items = [DatasetItem(reference_id="a", metadata={"k": "x", "pos": {"lat": 1, "lon": 2}},
                         annotations=[BoxAnnotation(label="c", x=0, y=0, width=1, height=1, metadata={"k": 1})],
                         predictions=[SegmentationAnnotation(mask=mask, metadata={"m": 1.5}, annotations=[
                             Segment(label="c", index=1, metadata={"k": True})])])]
    scenes = [Scene(reference_id="s", metadata={"k": [1]})]
    schema = infer_schema(items, scenes, check=True)
    assert schema["items"].fields["k"].inferred == "categorical"
    assert schema["items"].geo_paths == {"pos"}
    assert schema["annotations"].fields["k"].inferred == "numeric-int"
    assert schema["predictions"].fields["m"].inferred == "numeric-float"
    assert schema["segments"].fields["k"].inferred == "boolean"
    assert schema["scenes"].fields["k"].inferred == "list"
    top = infer_schema([DatasetItem(reference_id="g", metadata={"latitude": 5.0, "longitude": 6.0})])
    assert top["items"].geo_paths == {""}
    bad = [DatasetItem(reference_id="a", metadata={"k": 1}), DatasetItem(reference_id="b", metadata={"k": "1"})]
    with pytest.raises(MetadataTypeError, match=r'"k" is a number on item "a" but a string on item "b"'):
        infer_schema(bad, check=True)


def test_histograms() -> None:
    cat = infer_fields([(str(n), {"c": "ab"[n % 2]}) for n in range(5)])["c"]
    assert cat.histogram() == [("a", 3), ("b", 2)]
    num = infer_fields([(str(n), {"x": n}) for n in range(10)])["x"]
    hist = num.histogram(bins=3)
    assert [n for _, n in hist] == [3, 3, 4] and hist[0][0] == "0..3"
    assert infer_fields([("a", {"x": 5})])["x"].histogram() == [("5", 1)]


def test_replace_and_merge() -> None:
    current = {"a": 1, "w": {"t": 1, "d": "x"}}
    new = {"w": {"t": 2}, "b": True}
    assert replace_metadata(current, new) == {"w": {"t": 2}, "b": True}
    merged = merge_metadata(current, new)
    assert merged == {"a": 1, "w": {"t": 2}, "b": True}  # a dict value is replaced wholesale
    assert current == {"a": 1, "w": {"t": 1, "d": "x"}}  # inputs untouched
    merged["w"]["t"] = 99
    assert new["w"]["t"] == 2


def test_get_and_set_paths() -> None:
    md: dict[str, Any] = {}
    set_path(md, "a.b.c", 1)
    assert md == {"a": {"b": {"c": 1}}} and get_path(md, "a.b.c") == 1
    assert get_path(md, "a.x") is MISSING and get_path(md, "a.b.c.d") is MISSING
    with pytest.raises(ValueError, match="holds a numeric"):
        set_path(md, "a.b.c.d", 2)


def test_parse_cell_types() -> None:
    assert [parse_cell(c) for c in ("12", "-3", "2.50", "1e3", "TRUE", "false", "abc", "nan", "0012")] == [
        12, -3, 2.5, 1000.0, True, False, "abc", "nan", 12]
    assert parse_cell("") is MISSING and parse_cell("  ") is MISSING


def test_csv_table_is_typed_nested_and_checked(tmp_path: Path) -> None:
    csv = tmp_path / "m.csv"
    csv.write_text("file_name,weather.temperature,weather.sky,night,note\n"
                   "a.png,10.5,clear,true,\nb.png,11,,false,hi\n")
    rows = read_metadata_table(csv, "file_name")
    assert [(r.key, r.metadata, r.where) for r in rows] == [
        ("a.png", {"weather": {"temperature": 10.5, "sky": "clear"}, "night": True}, "line 2"),
        ("b.png", {"weather": {"temperature": 11}, "night": False, "note": "hi"}, "line 3")]
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("file_name,speed\na.png,fast\nb.png,3\n")
    with pytest.raises(MetadataTypeError, match=r'mixed\.csv: metadata key "speed" is a string on row "line 2" '
                                                r'but a number on row "line 3"'):
        read_metadata_table(mixed, "file_name")
    nokey = tmp_path / "nokey.csv"
    nokey.write_text("name,x\na,1\n")
    with pytest.raises(ReadError, match=r"nokey\.csv:line 1: no 'file_name' column"):
        read_metadata_table(nokey, "file_name")
    dup = tmp_path / "dup.csv"
    dup.write_text("file_name,x\na,1\na,2\n")
    with pytest.raises(ReadError, match=r"dup\.csv:line 3: file_name 'a' appears twice \(first at line 2\)"):
        read_metadata_table(dup, "file_name")


def test_json_tables(tmp_path: Path) -> None:
    as_list = tmp_path / "l.json"
    as_list.write_text(json.dumps([{"file_name": "a.png", "metadata": {"x": 1}}, {"file_name": "b.png", "y": "z"}]))
    assert [(r.key, r.metadata) for r in read_metadata_table(as_list, "file_name")] == [
        ("a.png", {"x": 1}), ("b.png", {"y": "z"})]
    as_map = tmp_path / "m.json"
    as_map.write_text(json.dumps({"a.png": {"x": 1}}))
    assert read_metadata_table(as_map, "file_name")[0].metadata == {"x": 1}
    bad = tmp_path / "b.json"
    bad.write_text(json.dumps([{"name": "a"}]))
    with pytest.raises(ReadError, match=r"b\.json#/0: expected an object with a string 'file_name'"):
        read_metadata_table(bad, "file_name")


nested = st.recursive(
    st.one_of(st.integers(-5, 5), st.booleans(), st.sampled_from(["a", "b"]), st.none()),
    lambda children: st.dictionaries(st.sampled_from(["p", "q", "r"]), children, min_size=1, max_size=3),
    max_leaves=8,
)


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.sampled_from(["w", "x", "y"]), nested, max_size=3))
def test_flatten_then_set_path_rebuilds_nested_metadata(md: dict[str, Any]) -> None:
    rebuilt: dict[str, Any] = {}
    for path, value in flatten(md):
        set_path(rebuilt, path, value)
        assert get_path(md, path) == value
    assert rebuilt == md


_LEAVES = st.one_of(st.integers(-5, 5), st.floats(-2, 2), st.booleans(), st.sampled_from(["a", "b"]), st.none(),
                   st.lists(st.integers(), max_size=1), st.fixed_dictionaries({"lat": st.integers(-90, 90),
                                                                                "lon": st.integers(-180, 180)}))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["w", "x"]), st.one_of(
    _LEAVES, st.dictionaries(st.sampled_from(["p", "q"]), _LEAVES, max_size=2)), max_size=2), max_size=8))
def test_kinds_only_schema_finds_the_same_conflicts(metadatas: list[dict[str, Any]]) -> None:
    """A kinds-only schema (what a writer keeps) passes over metadata of a shape it has seen and
    keeps no values, yet names the same conflicts with the same example items."""
    full, kinds = ScopeSchema("items"), ScopeSchema("items", kinds_only=True)
    for n, md in enumerate(metadatas):
        full.add(f"i{n}", md)
        kinds.add(f"i{n}", md)
    assert [str(e) for e in kinds.conflicts()] == [str(e) for e in full.conflicts()]
    assert {p: f.typed_kinds for p, f in kinds.fields.items()} == {p: f.typed_kinds for p, f in full.fields.items()}


def test_compute_metadata_builtins_are_safe_on_black_and_exact_on_colours() -> None:
    from PIL import Image

    from annobridge.core import defaults

    item = DatasetItem(reference_id="x")
    black = defaults.compute_metadata(item, Image.new("RGB", (3, 3)), ["luminance", "rgb-ratios"])
    # LightlyStudio's recipe: total = 1 on black, so every ratio is 0.0
    assert black == {"luminance": 0.0, "red_ratio": 0.0, "green_ratio": 0.0, "blue_ratio": 0.0}
    blue = defaults.compute_metadata(item, Image.new("RGBA", (2, 2), (0, 0, 255, 255)), ["rgb-ratios"])
    assert blue == {"red_ratio": 0.0, "green_ratio": 0.0, "blue_ratio": 1.0}
    grey = defaults.compute_metadata(item, Image.new("L", (2, 2), 51), ["luminance"])
    assert grey == {"luminance": 51.0}  # Pillow's L band, 0..255
    half = Image.new("RGB", (2, 1), (200, 100, 0))
    half.putpixel((1, 0), (0, 0, 100))  # sums R 200, G 100, B 100 over 2 pixels
    mixed = defaults.compute_metadata(item, half, ["luminance", "rgb-ratios"])
    assert mixed == {"luminance": (118 + 11) / 2, "red_ratio": 0.5, "green_ratio": 0.25, "blue_ratio": 0.25}
    assert defaults.compute_metadata(item, Image.new("L", (2, 2)), ["sharpness"]) is None
    assert defaults.metadata_stats() == ["luminance", "rgb-ratios"]
