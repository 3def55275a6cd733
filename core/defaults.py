"""Built-in implementations of annobridge hooks, registered by
:func:`annobridge.core.plugins.get_plugin_manager` and run last (``trylast=True``), so a
plugin can override them.

Image statistics (``annobridge metadata compute --stats ...``):

* ``luminance`` -> metadata ``luminance``: mean of Pillow's ``L`` conversion (ITU-R 601-2
  luma, ``L = R*299/1000 + G*587/1000 + B*114/1000``) divided by 255, so 0.0 (black) .. 1.0
  (white), rounded to 6 decimals.
* ``rgb-ratios`` -> ``red_ratio``, ``green_ratio``, ``blue_ratio``: each channel's mean
  divided by the sum of the three means (they sum to 1). An all-black image has no colour:
  each ratio is 1/3 (neutral), never a division by zero.
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
    from PIL import ImageStat

    out: dict[str, Any] = {}
    if "luminance" in stats:
        mean = ImageStat.Stat(image.convert("L")).mean[0]
        out["luminance"] = round(mean / 255.0, 6)
    if "rgb-ratios" in stats:
        r, g, b = ImageStat.Stat(image.convert("RGB")).mean[:3]
        total = r + g + b
        if total <= 0:
            out.update(red_ratio=round(1 / 3, 6), green_ratio=round(1 / 3, 6), blue_ratio=round(1 / 3, 6))
        else:
            out.update(red_ratio=round(r / total, 6), green_ratio=round(g / total, 6),
                       blue_ratio=round(b / total, 6))
    return out or None
