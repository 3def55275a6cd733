"""Each hook, exercised through a fresh plugin manager with a small plugin class."""

from __future__ import annotations

from annobridge import Capabilities, Format, hookimpl
from annobridge.core.plugins import FormatRegistry, builtin_plugin_modules, get_plugin_manager


def test_register_formats_from_a_plugin_class() -> None:
    class Mine:
        @hookimpl
        def register_formats(self):
            return [Format(name="mine", description="d", capabilities=Capabilities())]

    pm = get_plugin_manager()
    pm.register(Mine(), name="mine-plugin")
    registry = FormatRegistry.from_manager(pm)
    assert registry.get("mine").plugin == "mine-plugin"
    assert "jsonl" in registry.formats  # built-ins come through the very same hook


def test_register_formats_returning_none_provides_nothing() -> None:
    class Nothing:
        @hookimpl
        def register_formats(self):
            return None

    pm = get_plugin_manager()
    before = set(FormatRegistry.from_manager(pm).formats)
    pm.register(Nothing(), name="nothing")
    assert set(FormatRegistry.from_manager(pm).formats) == before


def test_register_formats_rejects_non_formats() -> None:
    class Wrong:
        @hookimpl
        def register_formats(self):
            return ["coco"]

    pm = get_plugin_manager()
    pm.register(Wrong(), name="wrong")
    registry = FormatRegistry.from_manager(pm)  # the others keep working
    assert "coco" in registry.formats and registry.get("coco").plugin == "annobridge.plugins.coco"
    assert [(f.name, f.error) for f in pm.failures] == [
        ("wrong", "returned str from register_formats, expected annobridge.Format")]


def test_builtins_are_discovered_not_imported_at_package_import() -> None:
    import subprocess
    import sys

    code = "import sys, annobridge; print(any(m.startswith('annobridge.plugins.') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()
    assert out == "False"  # no import-time side effects: plugins load when a manager is built
    assert "annobridge.plugins.jsonl" in builtin_plugin_modules()
