"""The labeling config (XML) that matches what the writer wrote, so Label Studio can import it.

Label Studio needs a project's labeling config to show and export tasks: one object tag
(``<Image name=... value="$image"/>``) per ``to_name`` and one control tag per ``from_name``
with its labels. The writer collects them from the regions it writes (``write-config=true``)
and writes ``<name>.label_config.xml`` beside the JSON.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

CONTROL_TAGS = {
    "rectanglelabels": "RectangleLabels", "rectangle": "Rectangle",
    "polygonlabels": "PolygonLabels", "polygon": "Polygon",
    "keypointlabels": "KeyPointLabels", "keypoint": "KeyPoint",
    "brushlabels": "BrushLabels", "brush": "Brush",
    "choices": "Choices", "taxonomy": "Taxonomy",
}
"""Region type -> control tag of the labeling config."""


class LabelConfig:
    """Control tags, their labels and the image tags, gathered from written tasks."""

    def __init__(self) -> None:
        self.images: dict[str, str] = {}  # to_name -> data key
        self.controls: dict[str, dict[str, Any]] = {}  # from_name -> type, to_name, labels, multiple

    def add_task(self, task: dict[str, Any], image_key: str | None) -> None:
        """Collect the control and object tags the task's regions use (first type per name wins)."""
        for key in ("annotations", "completions", "predictions"):
            for record in task.get(key) or ():
                for region in record.get("result") or ():
                    self._add(region, image_key)

    def _add(self, region: dict[str, Any], image_key: str | None) -> None:
        rtype = region.get("type")
        if rtype not in CONTROL_TAGS or "from_name" not in region or "to_name" not in region:
            return
        to_name = str(region["to_name"])
        self.images.setdefault(to_name, image_key if image_key and to_name == "image" else to_name)
        control = self.controls.setdefault(str(region["from_name"]), {
            "type": rtype, "to_name": to_name, "labels": {}, "multiple": False})
        value = region.get("value") or {}
        if rtype == "choices":
            control["multiple"] |= len(value.get("choices") or ()) > 1
            labels = [[c] for c in value.get("choices") or ()]
        elif rtype == "taxonomy":
            labels = value.get("taxonomy") or []
        else:
            labels = [[name] for name in value.get(rtype) or ()]
        for path in labels:
            node = control["labels"]
            for name in path:
                node = node.setdefault(name, {})

    def to_xml(self) -> str:
        """The ``<View>`` document."""
        view = ET.Element("View")
        for name, key in self.images.items():
            ET.SubElement(view, "Image", name=name, value=f"${key}")
        for name, control in self.controls.items():
            attrs = {"name": name, "toName": control["to_name"]}
            if control["multiple"]:
                attrs["choice"] = "multiple"
            tag = ET.SubElement(view, CONTROL_TAGS[control["type"]], attrs)
            child = "Choice" if control["type"] in ("choices", "taxonomy") else "Label"
            _labels(tag, control["labels"], child)
        ET.indent(view)
        return ET.tostring(view, encoding="unicode") + "\n"


def _labels(parent: ET.Element, labels: dict[str, Any], child: str) -> None:
    for name, below in labels.items():
        _labels(ET.SubElement(parent, child, value=name), below, child)
