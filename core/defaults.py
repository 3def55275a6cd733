"""Built-in implementations of annobridge hooks, registered by
:func:`annobridge.core.plugins.get_plugin_manager` and run last (``trylast=True``), so a
plugin can override them.

Image statistics (``annobridge metadata compute --stats ...``):

* ``luminance`` -> metadata ``luminance``: mean of Pillow's ``L`` band (ITU-R 601-2 luma,
  ``L = R*299/1000 + G*587/1000 + B*114/1000``), 0 (black) .. 255 (white), as
  LightlyStudio's metadata recipe computes it.
* ``rgb-ratios`` -> ``red_ratio``, ``green_ratio``, ``blue_ratio``: each channel's pixel
  sum divided by the sum of the three (they sum to 1); on an all-black image the total is
  taken as 1, so each ratio is 0.0, as in the same recipe.
"""

from __future__ import annotations

from typing import Any

from annobridge.core.hookspecs import hookimpl

BUILTIN_STATS = ("luminance", "rgb-ratios")


@hookimpl(trylast=True)
def metadata_stats() -> list[str]:
    return list(BUILTIN_STATS)


@hookimpl(trylast=True)
def compute_metadata(item: Any, image: Any, stats: list[str]) -> dict[str, Any] | None:
    import numpy as np

    out: dict[str, Any] = {}
    if "luminance" in stats:
        out["luminance"] = float(np.asarray(image.convert("L"), dtype=np.float64).mean())
    if "rgb-ratios" in stats:
        sums = np.asarray(image.convert("RGB"), dtype=np.int64).sum(axis=(0, 1))
        r, g, b = (int(v) for v in sums)
        total = (r + g + b) or 1
        out.update(red_ratio=r / total, green_ratio=g / total, blue_ratio=b / total)
    return out or None
