"""``label-studio``: Label Studio's JSON export of image tasks, annotations and predictions.

Files:
    One ``.json`` file: a list of tasks (Label Studio's "JSON" export), or a single task
    object (older exports; written back as an object). The "JSON-MIN" export (one flat
    record per task and annotator, see ``json_min.py``) is read too, and written as the full
    export: it holds no region ids, ``to_name`` or predictions to write back. A task is
    ``{"id", "data": {"image": URL, ...}, "annotations": [...], "predictions": [...],
    "meta": {...}, ...}``; each annotation (``completions`` in old exports) or prediction
    record holds ``result``, a list of regions ``{"id", "type", "from_name", "to_name",
    "original_width", "original_height", "image_rotation", "value": {...}}``.

Regions (coordinates in **percent** of ``original_width`` / ``original_height``, origin
top-left; the model holds pixels, ``pixel = percent * size / 100``):
    ``rectanglelabels`` / ``rectangle``: ``x, y`` is the box's own top-left corner,
        ``width`` in percent of the image width, ``height`` of the image height, and
        ``rotation`` in degrees clockwise (y down) **about that corner**. Rotation 0 reads
        as a :class:`BoxAnnotation`; any other as an :class:`OrientedBoxAnnotation`, whose
        rotation is about the centre: ``cx = x + w/2·cos θ - h/2·sin θ``,
        ``cy = y + w/2·sin θ + h/2·cos θ`` (pixels), the same angle (the corner is the same
        point either way; Label Studio's tag docs: "x coordinate of the top left corner
        before rotation"). Rotations read as ``(-180, 180]`` and are written as ``[0, 360)``,
        as Label Studio keeps them. A region's ``image_rotation`` (how the editor showed
        the image) is kept as given and not applied to the coordinates.
    ``polygonlabels`` / ``polygon``: ``points`` ``[[x, y], ...]`` -> one polygon ring.
    ``keypointlabels`` / ``keypoint``: one point ``x, y`` -> a :class:`KeypointsAnnotation`
        with one point named after its label, visibility 2 (Label Studio's keypoints are
        single labelled points; ``width`` is the drawn size and kept).
    ``brushlabels`` / ``brush``: ``value.rle`` (``format: "rle"``, see ``brush.py``) ->
        an :class:`ObjectMaskAnnotation` (inside = alpha non-zero).
    ``choices``: one choice -> :class:`CategoryAnnotation`, several ->
        :class:`MultiCategoryAnnotation`; ``taxonomy`` (paths of labels) ->
        :class:`MultiCategoryAnnotation` with each path joined by ``/``. ``from_name`` is
        the ``taxonomy_name``, and the header lists each as a :class:`Taxonomy`.
    A region's first label is the annotation's ``label`` (``""`` for unlabelled tools);
    other results types (``relation``, ``textarea``, ``labels``, ...) have no model kind.
    Every annotator's record adds its regions to the item's ``annotations`` (predictions
    to ``predictions``); the record they came from is kept, so they are grouped again on
    writing. Region ids repeated across records get a ``#n`` suffix in ``annotation_id``.
    Per-region choices (a ``choices`` result sharing a region's id) read as item-level
    categories: the model has no per-region classification.
    Image sizes come from the regions' ``original_width/height``; for a task whose regions
    give none, from the image under ``images=DIR`` (``data.image`` relative to it through
    ``core.paths.contained``, else its file name), else ``image-size``; a region that needs
    a size and has none is an error.
    A multi-ring polygon or many-point keypoints object that Label Studio split on writing
    reads back as separate annotations (nothing in the file groups them).

Kept so Label Studio -> Label Studio is exact (``attributes["label_studio"]``):
    on the item: task fields (``id``, ``created_at``, ``drafts``, ...), ``data`` keys other
    than the image, the name of the image key, and each annotation / prediction record's
    fields (``completed_by``, ``created_at``, ``model_version``, ``score``, ...) with the
    results of types this model has no kind for (``relation``, ``textarea``, ``rating``,
    ...) verbatim; on each annotation: its record, the region's fields (``id``,
    ``from_name``, ``to_name``, ``type``, ``origin``, ...), value fields with no place in
    the model (``closed``, a keypoint's ``width``), a region's labels when there are not
    exactly one, and its RLE when re-encoding the mask would give other bytes (Label
    Studio paints brushes in the label's colour). ``data.image`` is the item's
    ``image_location`` exactly as given (URLs are never opened); task ``meta`` is the
    item's metadata and a region's ``meta`` the annotation's. Predictions take
    ``confidence`` from the region's ``score``, else the record's.

Writing from other formats: the task ``id`` is the reference id when it is a decimal
integer, else the item's position, with the reference id kept in
``meta["annobridge_reference_id"]``; ``from_name`` is ``label``, ``polygon``, ``keypoint``,
``brush`` by kind, and a category's ``taxonomy_name`` (``choice`` / ``taxonomy`` when unset);
``to_name`` is ``image``. Image sizes come from the items (or ``image-size``).

Reading notes (in the report) the results kept only for the label-studio writer and the
regions with more than one label, whose further labels other formats do not see. Float
coordinates go through ``* size / 100`` and back: round trips agree within 1e-9, not bit
for bit.

What is lost (each reported): polygon rings past the first become polygons of their own;
a keypoints object becomes one point per labelled keypoint, named by its keypoint name
(its object label, skeleton, hidden state and unlabelled points are lost); lines,
cuboids, segmentations, scenes and point clouds have no Label Studio region for images.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, field_validator

from annobridge.core.formats import Capabilities, Format, LazyFunction
from annobridge.core.hookspecs import hookimpl
from annobridge.plugins.label_studio.regions import KINDS, size_option

CAPABILITIES = Capabilities(annotation_types=KINDS, prediction_types=KINDS,
                            item_metadata=True, annotation_metadata=True)


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


def detect(path: Path) -> bool:
    """A ``.json`` file whose start holds a task's ``"data"`` object and annotation lists, or
    JSON-MIN's ``annotation_id`` and ``annotator``."""
    if not path.is_file() or path.suffix.lower() != ".json":
        return False
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
    start = head.lstrip()[:1]
    if start not in (b"[", b"{") or (start == b"{" and b'"images"' in head):
        return False  # a COCO file written from Label Studio keeps the task "data" among its images
    if start == b"[" and b'"annotation_id"' in head and b'"annotator"' in head:
        return True  # JSON-MIN
    return b'"data"' in head and any(k in head for k in (b'"annotations"', b'"predictions"', b'"completions"'))


FORMAT = Format(
    name="label-studio",
    description="Label Studio JSON export: image tasks with annotations and predictions (percent coordinates, brush RLE)",
    capabilities=CAPABILITIES,
    read=LazyFunction(f"{__name__}.read", "read"),
    write=LazyFunction(f"{__name__}.write", "write"),
    detect=detect,
    read_options=LabelStudioReadOptions,
    write_options=LabelStudioWriteOptions,
)


@hookimpl
def register_formats() -> list[Format]:
    return [FORMAT]
