"""The hooks a plugin can implement (pluggy project name ``annobridge``).

A plugin is a module or object with functions marked ``@hookimpl``; built-in formats are
ordinary plugins and use the same hooks as a third-party package, which registers its
module through the ``annobridge`` entry-point group.
"""

from __future__ import annotations

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
    list to provide none. Two plugins providing the same format name is an error that names
    both plugins.
    """
