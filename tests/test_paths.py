"""core/paths.py: the one containment check for paths that come from data."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annobridge.core.errors import ReadError, WriteError
from annobridge.core.paths import (
    _SAFE,
    contained,
    is_contained,
    path_problem,
    safe_name,
    unsafe_name,
    write_new_file,
)

HOSTILE = ["/etc/passwd", "../../../etc/passwd", "a/../../x", "..", "C:\\Windows\\win.ini", "c:evil",
           "\\\\server\\share\\x", "\\etc\\passwd", "ok\x00.png", "", "a/b/../../../c"]
FINE = ["img.png", "a/b/c.png", "a/../b.png", "./x.png", "sub\\win.png", "..hidden.png", "a..b"]


@pytest.mark.parametrize("location", HOSTILE)
def test_hostile_locations_are_refused_with_the_field_and_item(tmp_path: Path, location: str) -> None:
    assert path_problem(location) is not None
    with pytest.raises(WriteError, match=r"file_name .* is not inside") as info:
        contained(tmp_path, location, what="file_name", item="img_1", error=WriteError)
    assert info.value.item == "img_1"
    assert not is_contained(tmp_path, location)


@pytest.mark.parametrize("location", HOSTILE)
def test_a_writers_own_folder_still_refuses_hostile_text(tmp_path: Path, location: str) -> None:
    """``made_here`` skips resolving symbolic links, never the text check."""
    with pytest.raises(WriteError, match="is not inside"):
        contained(tmp_path, location, what="label path", error=WriteError, made_here=True)


@pytest.mark.parametrize("location", FINE)
def test_ordinary_locations_stay_inside(tmp_path: Path, location: str) -> None:
    path = contained(tmp_path, location, what="file_name")
    assert os.path.realpath(path).startswith(os.path.realpath(tmp_path))


def test_a_symlink_that_points_out_is_refused(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "secret.txt").write_text("x")
    (tmp_path / "root" / "link.png").symlink_to(tmp_path / "secret.txt")
    (tmp_path / "root" / "dir").symlink_to(tmp_path)
    with pytest.raises(ReadError, match="symbolic link"):
        contained(tmp_path / "root", "link.png", what="image")
    with pytest.raises(ReadError, match="symbolic link"):
        contained(tmp_path / "root", "dir/secret.txt", what="image")


@pytest.mark.parametrize("name", ["img_001", "000123", "a b", "photo.jpg"])
def test_safe_name_keeps_ordinary_ids(name: str) -> None:
    assert safe_name(name) == name


@given(st.text())
def test_safe_name_is_one_component_and_reversible(name: str) -> None:
    component = safe_name(name)
    assert "/" not in component and "\\" not in component and "\x00" not in component
    assert not component.startswith(".") and component not in ("", ".", "..")
    assert path_problem(component) is None
    if name != "\x00empty":
        assert unsafe_name(component) == name


@given(st.text(alphabet=st.sampled_from("aZ09_.-~,+=@()[]{}!$&' /\\%:\x00é\n"), max_size=8))
def test_safe_name_fast_path_agrees_with_quote(name: str) -> None:
    """Plain ids skip ``quote``; every name still comes out as ``quote`` (plus the dot rule) makes it."""
    out = quote(name, safe=_SAFE)
    dots = len(out) - len(out.lstrip("."))
    out = "%2E" * dots + out[dots:]
    assert safe_name(name) == (out or "%00empty")


def test_write_new_file_makes_its_folder_and_writes_utf8_as_given(tmp_path: Path) -> None:
    target = tmp_path / "labels" / "train" / "a.txt"
    write_new_file(target, "é 1\n2\n")
    assert target.read_bytes() == "é 1\n2\n".encode()
    write_new_file(str(target), "3\n")  # an existing file is replaced, not appended to
    assert target.read_bytes() == b"3\n"
