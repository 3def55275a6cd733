"""The one exception tree of annobridge.

Every error that crosses a public boundary is an :class:`AnnobridgeError`. A message
names the place (file plus line, JSON pointer or item), the problem and the fix::

    train.json#/annotations/17 (item "img_42"): bbox has 3 numbers, expected 4 [x, y, w, h]

The CLI turns these into a one-line message and exit code 1, with no traceback.
"""

from __future__ import annotations

from os import PathLike


class AnnobridgeError(Exception):
    """Root of every error annobridge raises on purpose.

    Args:
        problem: what is wrong, in expected-vs-actual wording.
        file: the file the problem is in, when there is one.
        where: a position inside that file: ``"line 12"`` or a JSON pointer ``"#/images/3"``.
        item: the dataset item's reference id, when known.
        fix: how to fix it, when that is not obvious from the problem.
    """

    def __init__(
        self,
        problem: str,
        *,
        file: str | PathLike[str] | None = None,
        where: str | None = None,
        item: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.problem = problem
        self.file = None if file is None else str(file)
        self.where = where
        self.item = item
        self.fix = fix
        super().__init__(self.message)

    @property
    def location(self) -> str:
        """``file:where (item "id")`` — the parts that are known."""
        place = self.file or ""
        if self.where:
            sep = "" if self.where.startswith("#") or not place else ":"
            place = f"{place}{sep}{self.where}" if place else self.where
        if self.item is not None:
            place = f'{place} (item "{self.item}")' if place else f'item "{self.item}"'
        return place

    @property
    def message(self) -> str:
        text = f"{self.location}: {self.problem}" if self.location else self.problem
        if self.fix:
            text = f"{text}; {self.fix}"
        return text

    def __str__(self) -> str:
        return self.message


class PluginError(AnnobridgeError):
    """A plugin failed to load or registered something invalid."""


class FormatError(AnnobridgeError):
    """A format is unknown, ambiguous, cannot do what was asked, or got bad options."""


class ReadError(AnnobridgeError):
    """Input data is malformed or inconsistent."""


class WriteError(AnnobridgeError):
    """Output could not be written (destination exists, I/O failure, value out of range)."""


class UnsupportedAnnotationError(WriteError):
    """The target format cannot represent an annotation and dropping it was not allowed."""


class MetadataTypeError(AnnobridgeError):
    """A metadata key holds values of two incompatible types across a dataset.

    The message names the key, both types and an example owner (item, scene, annotation)
    of each, e.g. ``metadata key "speed" is a string on item "a" but a number on item "b"``.
    """


class ValidationWarning(AnnobridgeError):
    """A finding of ``validate`` that ``convert`` does not refuse: the data is kept as given
    (and noted as ``warning: ...`` in the conversion report), but another tool may reject it."""
