"""Building the plugin manager and the registry of formats.

Nothing happens at import: :func:`get_plugin_manager` builds a fresh manager each time it
is called (tests build their own and register small plugin classes on it).
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

import pluggy

from annobridge.core import defaults, hookspecs
from annobridge.core.errors import FormatError, PluginError
from annobridge.core.formats import Format

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "annobridge"


@dataclass
class PluginFailure:
    """A plugin that could not be loaded: its entry-point name and why."""

    name: str
    error: str


def builtin_plugin_modules() -> list[str]:
    """Every public module of ``annobridge.plugins`` (modules starting with ``_`` are helpers)."""
    import annobridge.plugins as pkg

    return sorted(
        f"{pkg.__name__}.{m.name}"
        for m in pkgutil.iter_modules(pkg.__path__)
        if not m.name.startswith("_")
    )


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus the list of entry-point plugins that failed to load."""

    def __init__(self) -> None:
        super().__init__("annobridge")
        self.failures: list[PluginFailure] = []


def get_plugin_manager(*, load_entry_points: bool = True) -> PluginManager:
    """A new manager with the hookspecs, the built-in formats and installed plugins.

    A third-party plugin that fails to import is logged and recorded (see
    ``pm.failures``) and does not stop the others from loading.
    """
    pm = PluginManager()
    pm.add_hookspecs(hookspecs)
    pm.register(defaults, name="annobridge.core.defaults")
    for name in builtin_plugin_modules():
        pm.register(importlib.import_module(name), name=name)
    if load_entry_points:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
                pm.register(plugin, name=ep.name)
            except Exception as exc:  # a broken plugin must not take the others down
                logger.warning("plugin %r failed to load: %s: %s", ep.name, type(exc).__name__, exc)
                pm.failures.append(PluginFailure(ep.name, f"{type(exc).__name__}: {exc}"))
    pm.check_pending()
    return pm


@dataclass
class FormatRegistry:
    """The formats every registered plugin provides, by name."""

    formats: dict[str, Format] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)

    @classmethod
    def from_manager(cls, pm: pluggy.PluginManager) -> FormatRegistry:
        registry = cls(failures=list(getattr(pm, "failures", [])))
        for impl in pm.hook.register_formats.get_hookimpls():
            plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)
            provided = impl.function() or []
            for fmt in provided:
                if not isinstance(fmt, Format):
                    raise PluginError(
                        f"plugin {plugin_name!r} returned {type(fmt).__name__} from register_formats, "
                        "expected annobridge.Format"
                    )
                if fmt.name in registry.formats:
                    other = registry.formats[fmt.name].plugin
                    raise PluginError(
                        f"format {fmt.name!r} is provided by both {other!r} and {plugin_name!r}",
                        fix="uninstall one of the plugins",
                    )
                registry.formats[fmt.name] = _with_plugin(fmt, plugin_name)
        return registry

    def get(self, name: str) -> Format:
        try:
            return self.formats[name]
        except KeyError:
            known = ", ".join(sorted(self.formats))
            raise FormatError(f"unknown format {name!r}", fix=f"known formats: {known}") from None

    def detect(self, path: Path) -> list[str]:
        """Names of the readable formats whose ``detect`` accepts ``path``."""
        found = []
        for name, fmt in sorted(self.formats.items()):
            if fmt.detect is None or fmt.read is None:
                continue
            try:
                if fmt.detect(path):
                    found.append(name)
            except Exception as exc:  # detection is best-effort: a crash means "not mine"
                logger.debug("detect of %s raised %r on %s", name, exc, path)
        return found

    def detect_one(self, path: Path) -> Format:
        """The single format that recognises ``path``; FormatError when none or several do."""
        if not path.exists():
            raise FormatError("input does not exist", file=path)
        found = self.detect(path)
        if len(found) == 1:
            return self.formats[found[0]]
        readable = ", ".join(sorted(n for n, f in self.formats.items() if f.read))
        if not found:
            raise FormatError("could not recognise the format", file=path,
                              fix=f"name it with --from; readable formats: {readable}")
        raise FormatError(f"input matches several formats: {', '.join(found)}", file=path,
                          fix="name one with --from")


def _with_plugin(fmt: Format, plugin_name: str) -> Format:
    from dataclasses import replace

    return fmt if fmt.plugin else replace(fmt, plugin=plugin_name)


def get_registry() -> FormatRegistry:
    """A registry built from a fresh plugin manager."""
    return FormatRegistry.from_manager(get_plugin_manager())
