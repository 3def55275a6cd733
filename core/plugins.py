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
from typing import Any

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


def call_each(pm: pluggy.PluginManager, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
    """Call every implementation of ``hook`` in pluggy's order, one at a time.

    A plugin whose hook raises is logged as a warning by plugin name and recorded in
    ``pm.failures`` (``annobridge plugins`` lists it); the others still run.

    Returns:
        ``(plugin name, result)`` for each implementation that returned normally.
    """
    out = []
    for impl in reversed(getattr(pm.hook, hook).get_hookimpls()):
        name = pm.get_name(impl.plugin) or repr(impl.plugin)
        try:
            out.append((name, impl.function(*[kwargs[a] for a in impl.argnames])))
        except Exception as exc:  # a broken plugin must not take the others down
            logger.warning("plugin %r: hook %s raised %s: %s", name, hook, type(exc).__name__, exc)
            failures = getattr(pm, "failures", None)
            if failures is not None:
                failures.append(PluginFailure(name, f"{hook} raised {type(exc).__name__}: {exc}"))
    return out


@dataclass
class FormatRegistry:
    """The formats every registered plugin provides, by name.

    A format name claimed by two plugins is in ``conflicts`` (name -> the plugins' formats),
    not in ``formats``: only commands that use that name fail.
    """

    formats: dict[str, Format] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)
    conflicts: dict[str, list[Format]] = field(default_factory=dict)

    @classmethod
    def from_manager(cls, pm: pluggy.PluginManager) -> FormatRegistry:
        results = call_each(pm, "register_formats")
        registry = cls(failures=list(getattr(pm, "failures", [])))
        for plugin_name, provided in reversed(results):  # registration order: built-ins first
            if not isinstance(provided, (list, tuple)):
                provided = [] if provided is None else [provided]
            for fmt in provided:
                if not isinstance(fmt, Format):
                    problem = f"returned {type(fmt).__name__} from register_formats, expected annobridge.Format"
                    logger.warning("plugin %r %s", plugin_name, problem)
                    registry.failures.append(PluginFailure(plugin_name, problem))
                    continue
                fmt = _with_plugin(fmt, plugin_name)
                if fmt.name in registry.conflicts:
                    registry.conflicts[fmt.name].append(fmt)
                elif fmt.name in registry.formats:
                    registry.conflicts[fmt.name] = [registry.formats.pop(fmt.name), fmt]
                    logger.warning("format %r is provided by both %r and %r; commands using it will fail",
                                   fmt.name, registry.conflicts[fmt.name][0].plugin, plugin_name)
                else:
                    registry.formats[fmt.name] = fmt
        if hasattr(pm, "failures"):
            pm.failures.extend(registry.failures[len(pm.failures):])  # for `annobridge plugins`
        return registry

    def get(self, name: str) -> Format:
        if name in self.conflicts:
            plugins = " and ".join(repr(f.plugin) for f in self.conflicts[name])
            raise PluginError(f"format {name!r} is provided by both {plugins}",
                              fix="uninstall one of the plugins (annobridge plugins lists them)")
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
