"""File, folder and tag names that tile, mosaic and training agree on (standard library only).

A chip folder holds ``index.gpkg`` (layer ``chips``) and chips named by
:func:`chip_name`, under ``A/`` and ``B/`` when paired; a padded chip carries the
:data:`VALID_WINDOW_TAG` GeoTIFF tag.
"""

from __future__ import annotations

import re
from pathlib import Path

INDEX_NAME = "index.gpkg"
INDEX_LAYER = "chips"
PAIR_DIRS = ("A", "B")

#: GeoTIFF tag on a padded chip: ``"col row width height"`` of its part inside the raster.
VALID_WINDOW_TAG = "GEOGAN_VALID_WINDOW"

#: A chip file name made by :func:`chip_name`.
CHIP_NAME_RE = re.compile(r"^(?P<stem>.+)__c(?P<col>\d+)_r(?P<row>\d+)\.tif$")


def chip_name(stem: str, col_off: int, row_off: int) -> str:
    """The file name of a chip: ``naip_2009__c000512_r000256.tif``."""
    return f"{stem}__c{col_off:06d}_r{row_off:06d}.tif"


def parse_chip_name(name: str) -> tuple[str, int, int]:
    """``(stem, col_off, row_off)`` from a chip file name made by :func:`chip_name`."""
    m = CHIP_NAME_RE.match(Path(name).name)
    if m is None:
        raise ValueError(f"{name} is not a geogan chip name (<stem>__cCCCCCC_rRRRRRR.tif)")
    return m["stem"], int(m["col"]), int(m["row"])
