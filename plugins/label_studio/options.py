"""The ``--option`` models of the ``label-studio`` format(s): pydantic, imported when options are
parsed or described, not when the format is declared (``annobridge formats`` imports no
pydantic).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, field_validator

from annobridge.plugins.label_studio.regions import size_option


class LabelStudioReadOptions(BaseModel):
    """Options of the reader.

    Args:
        image_size: ``WIDTHxHEIGHT`` for regions without ``original_width/height``.
        images: a folder holding the task images: sizes are read from their headers when
            the regions do not give them (``data.image`` relative to it, or its file name).
        image_key: the ``data`` key of the image (default ``image``, else the one string
            value that names an image file).
        config: the project's labeling config XML, for a JSON-MIN export: the keys it names
            as control tags are results (a bare string under a ``Choices`` name is a choice).
    """

    model_config = ConfigDict(extra="forbid")
    image_size: str | None = None
    images: Path | None = None
    image_key: str | None = None
    config: Path | None = None

    @field_validator("image_size")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        size_option(value)
        return value


class LabelStudioWriteOptions(BaseModel):
    """Options of the writer.

    Args:
        image_size: ``WIDTHxHEIGHT`` for items whose size is unknown.
        image_key: the ``data`` key for the image of items that do not name one (``image``).
        write_config: also write ``<name>.label_config.xml``, a labeling config with an
            ``Image`` tag per ``to_name`` and a control tag per ``from_name`` with its labels,
            so the JSON can be imported into a new Label Studio project.
    """

    model_config = ConfigDict(extra="forbid")
    image_size: str | None = None
    image_key: str = "image"
    write_config: bool = False

    @field_validator("image_size")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        size_option(value)
        return value
