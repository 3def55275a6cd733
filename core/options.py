"""The options model of a format that takes none (:class:`NoOptions`).

Its own module so that declaring formats (``core/formats.py``) imports no pydantic; a format
refers to it by name (``core.formats.NO_OPTIONS``), and ``annobridge.core.formats.NoOptions``
still names it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class NoOptions(BaseModel):
    """A format that takes no options."""

    model_config = ConfigDict(extra="forbid")
