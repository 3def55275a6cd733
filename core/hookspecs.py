"""The hooks a plugin can implement (pluggy project name ``annobridge``).

A plugin is a module or object with functions marked ``@hookimpl``; built-in formats are
ordinary plugins and use the same hooks as a third-party package, which registers its
module through the ``annobridge`` entry-point group.
"""

from __future__ import annotations

from typing import Any

import pluggy

from annobridge.core.formats import Format

hookspec = pluggy.HookspecMarker("annobridge")
hookimpl = pluggy.HookimplMarker("annobridge")


@hookspec
def register_formats() -> list[Format]:
    """Return the formats this plugin provides.

    Called once each time a plugin manager is built (:func:`annobridge.core.plugins.get_plugin_manager`),
    after every plugin has been registered. Takes no arguments.

    Returns a list of :class:`~annobridge.core.formats.Format`; return ``None`` or an empty
    list to provide none. Two plugins providing the same format name fail the commands that
    use that name, with an error naming both; a hook that raises is a warning naming the
    plugin, and the other plugins keep working.
    """


@hookspec
def metadata_stats() -> list[str]:
    """Return the names of the image statistics this plugin computes.

    Called when ``annobridge metadata compute`` checks its ``--stats`` names and when it
    lists them in its help. Takes no arguments.

    Returns a list of stat names (kebab-case, e.g. ``"luminance"``); return ``None`` or an
    empty list when the plugin computes none. A name offered by no plugin is a usage error.
    """


@hookspec
def compute_metadata(item: Any, image: Any, stats: list[str]) -> dict[str, Any] | None:
    """Compute metadata values from an item's image.

    Called by ``annobridge metadata compute`` (and
    :func:`annobridge.converters.metadata_tools.compute_metadata`) once per dataset item
    whose image is a readable local file, after the image was opened. Every plugin is
    called; the built-ins in ``core/defaults.py`` run last (``trylast``).

    Args:
        item: the :class:`~annobridge.core.model.DatasetItem` (read it, do not modify it).
        image: the item's image as an opened ``PIL.Image.Image`` (any mode; convert as needed).
        stats: the stat names the user asked for (``["luminance", "rgb-ratios"]``); compute
            only those you offer in :func:`metadata_stats`.

    Returns a dict of metadata keys to values (JSON values) to merge into the item's
    metadata (top-level merge: keys added or overwritten). Return ``None`` when none of
    ``stats`` is yours. When two plugins return the same key, the one that is not trylast
    wins (a plugin can override a built-in).
    """
