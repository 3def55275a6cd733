"""Meta-tests: every hook is documented and tested, every format has fixtures, and CI runs
exactly the README's test command."""

from __future__ import annotations

import inspect
import re

from annobridge.core import hookspecs
from annobridge.core.plugins import get_plugin_manager, get_registry
from tests.conftest import FIXTURES, ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _hookspecs() -> dict[str, object]:
    pm = get_plugin_manager()
    return {name: getattr(hookspecs, name) for name in dir(pm.hook) if not name.startswith("_")}


def test_every_hook_has_a_readme_section_headed_by_its_signature() -> None:
    for name, func in _hookspecs().items():
        params = ", ".join(inspect.signature(func).parameters)
        assert re.search(rf"^#+ `{name}\({re.escape(params)}\)", README, re.M), f"no README section for {name}"
        assert func.__doc__ and "Return" in func.__doc__, f"{name} docstring does not say what to return"


def test_every_hook_is_tested() -> None:
    test_text = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").glob("test_*.py"))
    for name in _hookspecs():
        assert re.search(rf"def test_\w*{name}\w*\(", test_text), f"no test named after hook {name}"


def test_every_format_has_fixtures_with_sources() -> None:
    for name in get_registry().formats:
        cases = [p for p in (FIXTURES / name).glob("*") if p.is_dir()] if (FIXTURES / name).is_dir() else []
        assert cases, f"format {name} has no fixtures under fixtures/{name}/"
        for case in cases:
            assert (case / "SOURCES.md").is_file() or (case.parent / "SOURCES.md").is_file(), \
                f"{case} has no SOURCES.md (origin and licence)"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (ROOT / ".ci/run").read_text(encoding="utf-8")
    command = next(line for line in ci.splitlines() if "pytest" in line)
    assert f"```bash\n{command}\n```" in README


def test_readme_quick_start_converts_a_bundled_fixture() -> None:
    blocks = re.findall(r"```bash\n(.+?)\n```", README)
    demo = next(b for b in blocks if "annobridge convert" in b)
    assert "pip install ." in demo
    src = demo.split("annobridge convert ")[1].split()[0]
    assert (ROOT / src).exists() and src.startswith("fixtures/")


def test_docstrings_point_only_at_files_in_the_repository() -> None:
    """A ``something.md`` named in library code exists in the repository (the team's format
    sheets are not shipped with it)."""
    root = ROOT
    named = set()
    for folder in ("core", "plugins", "converters", "annobridge"):
        for path in (root / folder).rglob("*.py"):
            named.update((path, m) for m in re.findall(r"[\w./-]+\.md\b", path.read_text(encoding="utf-8")))
    missing = [f"{p.relative_to(root)}: {m}" for p, m in named
               if not (root / m).is_file() and m != "SOURCES.md"]
    assert not missing, missing


def test_every_built_in_reader_is_in_the_refusal_audit() -> None:
    """docs/refusals.md lists, per format, what a reader refuses and why (issue 9 §1)."""
    text = (ROOT / "docs" / "refusals.md").read_text(encoding="utf-8")
    audited = {row.split("|")[1].strip() for row in text.splitlines() if row.startswith("| ") and "---" not in row}
    audited = {name.strip() for cell in audited for name in cell.split(",")}
    readers = {f.name for f in get_registry().formats.values()
               if f.read is not None and f.plugin.startswith("annobridge.plugins.")}
    assert readers <= audited, sorted(readers - audited)
