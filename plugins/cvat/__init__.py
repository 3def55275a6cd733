"""``cvat``: CVAT for images 1.1 and CVAT for video 1.1 XML.

Files:
    One XML file (``annotations.xml`` of a CVAT export; the path may also be the export's
    folder) with the root ``<annotations>``, ``<version>1.1</version>``, ``<meta>`` (the
    task or project with its ``<labels>``), then either ``<image>`` elements (CVAT for
    images) or ``<track>`` elements (CVAT for video). Detected by that root and version.
    The file is parsed in a stream (expat, one ``<image>`` or ``<track>`` at a time, each
    error naming its line); a video's tracks are held until the last one, since a frame's
    objects come from every track. Entity declarations are refused.

Labels (``<meta>``):
    Each ``<label>`` becomes a :class:`Category` (ids 1, 2, ... in file order) with
    ``attributes``: ``color``, ``cvat_type`` (``<type>``: any, rectangle, polygon,
    skeleton, ...), ``cvat_attributes`` (the attribute specs: one dict per
    ``<attribute>`` of ``name``, ``mutable``, ``input_type``, ``default_value``, ``values``
    — ``values`` as the text it is, newline- or space-separated), ``cvat_svg`` and
    ``cvat_extra`` (other children, verbatim). A skeleton's element labels (those with
    ``<parent>``) are not categories: they are the skeleton category's ``keypoints`` (in
    file order) and its ``cvat_elements`` list; its ``skeleton`` edges (0-based) are read
    from the ``<svg>`` lines (``data-node-from``/``data-node-to`` between circles'
    ``data-node-id``, named by ``data-label-name``). The rest of ``<meta>`` is kept in
    ``header.info["cvat"]["meta"]`` (as ``[tag, text, children]``) and written back as
    read, its ``<labels>`` filled from the categories; ``header.name`` is the task name.

Shapes (both modes) -> annotations; ``label`` is the shape's (or track's) label:
    * ``box`` -> ``BoxAnnotation`` (``xtl, ytl`` -> ``x, y``; ``xbr - xtl`` -> width).
      A box with a ``rotation`` attribute -> ``OrientedBoxAnnotation`` (centre of the
      unrotated box, its width and height, rotation in degrees clockwise about the
      centre — CVAT's convention and the model's). CVAT writes ``rotation`` only when it is
      not 0; this writer writes it for every oriented box, so an oriented box at 0° stays
      one.
    * ``polygon`` -> ``PolygonAnnotation`` (one ring); ``polyline`` -> ``LineAnnotation``.
    * ``points`` -> ``KeypointsAnnotation`` named ``"1".."n"``, all visible, with
      ``attributes["cvat_points"] = True`` so it is written back as ``<points>``.
    * ``ellipse`` -> ``PolygonAnnotation`` of 32 vertices on the ellipse, with
      ``attributes["cvat_ellipse"] = [cx, cy, rx, ry, rotation]``: the writer writes the
      ellipse back exactly from these; other formats get the polygon.
    * ``mask`` -> ``ObjectMaskAnnotation`` of the image's size (compressed COCO RLE).
      CVAT's ``rle`` is run lengths over the ``width x height`` box at ``left, top``,
      row-major, starting with a background run; decoding and encoding are exact. A box
      larger than the foreground's is kept in ``attributes["cvat_mask_box"]``
      (``[left, top, width, height]``); the writer otherwise writes the tight box.
    * ``skeleton`` -> ``KeypointsAnnotation`` with the label's element names and edges:
      an element ``outside=1`` -> visibility 0 (its coordinates kept), ``occluded=1`` -> 1,
      else 2; an element missing from the file -> 0, marked ``{"absent": true}`` in
      ``attributes["cvat_elements"][name]``, which also keeps an element's ``source``,
      ``keyframe`` and ``<attribute>`` values (``label_attributes``).
    * ``tag`` -> ``CategoryAnnotation`` (images only).
    * ``cuboid`` (CVAT's 2D pseudo-3D box of 8 image points) has no canonical type: it is
      dropped and reported ("cvat cuboid").
    Every shape: ``occluded`` (0/1), ``z_order`` (int) and ``source`` (text) in
    ``attributes`` under those names when the file has them, ``<attribute name=..>``
    values in ``attributes["label_attributes"]`` (``{name: text}``), ``group_id`` (not 0)
    -> ``group_id``; XML attributes of a shape that the mapping does not read (an old
    exporter's ``annotation_type``) in ``attributes["cvat_xml"]``, written back as they
    are. ``annotation_id`` is the element's position in its ``<image>``
    (``"0"``, ``"1"``, ...) or ``track-<id>`` in a video. Items have no metadata and
    annotations no confidence: CVAT XML holds ground truth only.

CVAT for images:
    One item per ``<image>``: ``reference_id`` = ``name`` without its image extension
    (``a/img0.jpg`` -> ``a/img0``), ``image_location`` = ``name`` as written, or with read
    option ``images=DIR`` the path ``DIR/name`` (checked to stay inside ``DIR``);
    ``width``/``height``; the other ``<image>`` attributes (``id``, ``subset``,
    ``task_id``) in ``attributes["cvat"]`` as text, written back as they are.

CVAT for video:
    The task is one scene (``header.scenes``, id = the task name, else the folder or file
    name); its frames are items ``frame_000010`` (``FrameRef.index`` = CVAT's frame number)
    for every frame from ``start_frame`` to ``stop_frame`` by the ``frame_filter`` step,
    and every frame a shape names; sizes from ``<original_size>``; ``images=DIR`` gives
    them ``DIR/frame_000010.png``. A track's shape on a frame becomes an annotation of
    that frame with ``track_reference_id`` = the track id, ``attributes["keyframe"]``
    (0/1), the track's ``source``/``group_id``, and its other attributes (a project
    export's ``task_id``, ``subset``) in ``attributes["cvat_track"]``.
    Interpolated frames: shapes are read exactly as the file lists them. CVAT exports a
    track's shape on every frame from its first keyframe to its ``outside`` keyframe
    (interpolated ones with ``keyframe="0"``), so every frame gets its object; a file
    that lists keyframes only (hand-made) gives annotations on those frames only — the
    reader does not interpolate. Shapes with ``outside="1"`` (and skeletons whose
    elements are all outside) are no object on their frame: they are kept verbatim in
    the frame's ``attributes["cvat_outside"]`` (``[{"track": {...}, "shape": [...]}]``)
    and written back exactly. Writing, each track's shapes are written with their
    keyframe flags; where a track has a shape on frame f and nothing on the scene's next
    frame, an outside keyframe (a copy of the shape) is added there, since CVAT keeps a
    shape until an outside keyframe. Annotations without a track become one-frame tracks
    (as CVAT exports single shapes); tags are dropped and reported.

Writing:
    ``mode=auto`` (default) writes CVAT for video when the dataset was read from one or
    is the frames of one scene, else CVAT for images; ``mode=images`` / ``mode=video``
    force it (video needs every item to be a frame of one scene). Numbers are written in
    their shortest exact form (CVAT itself writes two decimals). Labels used but not in
    the categories are added to ``<meta>`` (noted), except for a dataset read from CVAT,
    whose ``<meta>`` is written back as it was; a keypoints label becomes a
    skeleton label whose elements are the keypoint names, with an ``<svg>`` drawn from the
    skeleton edges (nodes on a circle). ``images=DIR`` writes image names relative to
    ``DIR`` (the location must lie inside it). Nothing is derived: a mask stays a mask,
    a polygon a polygon.

What is lost (all reported): item and annotation metadata, predictions, multicategory,
cuboids, segmentations (the engine drops what the capabilities exclude); further
polygon rings (written as polygons of the same group); per-point visibility of a
``<points>`` shape; ``taxonomy_name``; KITTI occlusion levels above 1; tracks and scene
frames in CVAT for images; reference ids that are not the image name (noted);
non-integer group and track ids (renumbered, noted). A CVAT skeleton label holds
skeletons only, so a dataset that uses one label for a box and keypoints (COCO person)
is written as such, which CVAT's own importer may refuse.
"""

from __future__ import annotations

from pathlib import Path

from annobridge.core.formats import Capabilities, Format, LazyFunction, lazy_exports
from annobridge.core.hookspecs import hookimpl

# The options models (pydantic), the reader and the writer (numpy, the model) are
# imported on first use, not to list formats.
__getattr__ = lazy_exports(__name__, {"options": ("CvatReadOptions", "CvatWriteOptions")})


def annotation_file(path: Path) -> Path:
    """The XML file of ``path``: the file itself, or ``annotations.xml`` in a folder. Here, not in
    the reader: detection runs for every source and must not import the reader."""
    return path / "annotations.xml" if path.is_dir() else path


def detect(path: Path) -> bool:
    """An XML file (or a folder's ``annotations.xml``) whose root is ``<annotations>`` and
    whose ``<version>`` is 1.1, judged from its first 4 KiB."""
    xml = annotation_file(path)
    if not xml.is_file() or xml.suffix.lower() != ".xml":
        return False
    with open(xml, "rb") as f:
        head = f.read(4096).decode("utf-8", "replace")
    start = head.find("<annotations")
    if start < 0 or "<version>1.1</version>" not in head:
        return False
    before = head[:start]
    return "<" not in before.replace("<?xml", "").replace("<!--", "")


CAPABILITIES = Capabilities(
    annotation_types=frozenset({"box", "oriented_box", "polygon", "line", "keypoints", "object_mask", "category"}),
    scenes=True,
)

FORMAT = Format(
    name="cvat",
    description="CVAT for images / for video 1.1 XML (boxes, rotated boxes, polygons, polylines, points, "
                "ellipses, masks, skeletons, tags, tracks)",
    capabilities=CAPABILITIES,
    read=LazyFunction(f"{__name__}.read", "read"),
    write=LazyFunction(f"{__name__}.write", "write"),
    detect=detect,
    read_options=LazyFunction(f"{__name__}.options", "CvatReadOptions"),
    write_options=LazyFunction(f"{__name__}.options", "CvatWriteOptions"),
    output="file",
)


@hookimpl
def register_formats() -> list[Format]:
    return [FORMAT]
