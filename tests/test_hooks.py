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


def test_register_formats_that_raises_is_reported_by_plugin_name_and_the_rest_work() -> None:
    class Broken:
        @hookimpl
        def register_formats(self):
            raise RuntimeError("boom")

    pm = get_plugin_manager()
    pm.register(Broken(), name="broken-plugin")
    registry = FormatRegistry.from_manager(pm)
    assert "jsonl" in registry.formats and "coco" in registry.formats
    assert [(f.name, f.error) for f in pm.failures] == [("broken-plugin", "register_formats raised RuntimeError: boom")]


def test_metadata_stats_and_compute_metadata_that_raise_leave_the_builtins_working(tmp_path) -> None:
    from PIL import Image

    from annobridge.converters.metadata_tools import available_stats
    from annobridge.core.plugins import call_each

    class Broken:
        @hookimpl
        def metadata_stats(self):
            raise ValueError("no stats today")

        @hookimpl
        def compute_metadata(self, item, image, stats):
            raise KeyError("bad")

    pm = get_plugin_manager()
    pm.register(Broken(), name="broken-stats")
    assert "luminance" in available_stats(pm)
    with Image.new("L", (2, 2), 255) as img:
        out = dict(call_each(pm, "compute_metadata", item=None, image=img, stats=["luminance"]))
    assert out["annobridge.core.defaults"] == {"luminance": 255.0}  # Pillow's L band, 0..255
    assert {f.name for f in pm.failures} == {"broken-stats"}
    assert any("metadata_stats raised ValueError" in f.error for f in pm.failures)
