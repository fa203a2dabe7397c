"""How large a raster geogan takes, stated once, and how to raise the limits.

A raster's header can declare any size: a 45 MB sparse GeoTIFF may claim 10^12 pixels, a
4 MB VRT 100,000 bands. geogan checks what a raster declares when it opens it, before it
reads a pixel or allocates anything in proportion to the raster:

- **bands** of one raster: at most :data:`MAX_BANDS` (256), ``GEOGAN_MAX_BANDS``;
- **pixels** of one raster (width x height): at most :data:`MAX_PIXELS` (2^34, about
  17 gigapixels, e.g. 131,072 x 131,072 px), ``GEOGAN_MAX_PIXELS``;
- **candidate chips** ``tile`` cuts from one raster: at most :data:`MAX_CHIPS`
  (1,000,000), ``GEOGAN_MAX_CHIPS``; ``tile`` keeps every candidate window in memory;
- **values read at once** (pixels x bands of one window: a ``tile`` chip, a ``train``
  crop or chip, a ``translate`` tile): at most :data:`MAX_READ` (2^28, 1 GiB as float32,
  e.g. 9,459 x 9,459 px of 3 bands), ``GEOGAN_MAX_READ``. ``evaluate`` reads blocks of at
  most :data:`BLOCK_VALUES` values, shrinking its block for rasters of many bands.

Each environment variable, set to a whole number, replaces its default (to take a larger
real raster, or to be stricter on a shared server).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from geogan.errors import InputError

#: Default largest band count of one raster (``GEOGAN_MAX_BANDS``).
MAX_BANDS = 256
#: Default largest pixel count (width x height) of one raster (``GEOGAN_MAX_PIXELS``).
MAX_PIXELS = 2**34
#: Default largest number of candidate chips ``tile`` cuts from one raster (``GEOGAN_MAX_CHIPS``).
MAX_CHIPS = 1_000_000
#: Default most values (pixels x bands) of one window read at once (``GEOGAN_MAX_READ``).
MAX_READ = 2**28
#: Most values (pixels x bands) of one raster ``evaluate`` reads at once.
BLOCK_VALUES = 2**24

_DEFAULTS = {"GEOGAN_MAX_BANDS": MAX_BANDS, "GEOGAN_MAX_PIXELS": MAX_PIXELS,
             "GEOGAN_MAX_CHIPS": MAX_CHIPS, "GEOGAN_MAX_READ": MAX_READ}


def limit(variable: str) -> int:
    """The limit named by environment ``variable``: its value if set, else the default."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return _DEFAULTS[variable]
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(f"{variable}={text!r} is not a positive whole number; set it to a "
                         f"limit such as {_DEFAULTS[variable]} or unset it")
    return value


def check_declared_size(src: Any, path: str | os.PathLike[str]) -> None:
    """Refuse a raster whose header declares more bands or pixels than geogan's limits.

    Only the header is looked at: nothing is read, so a hostile file fails at once.
    """
    bands = limit("GEOGAN_MAX_BANDS")
    if src.count > bands:
        raise InputError(f"{path} declares {src.count:,} bands, more than geogan's limit of "
                         f"{bands:,}; keep the bands you need (gdal_translate -b 1 -b 2 ...), "
                         "or raise the limit with GEOGAN_MAX_BANDS if the raster is real")
    pixels = limit("GEOGAN_MAX_PIXELS")
    if src.width * src.height > pixels:
        raise InputError(f"{path} declares {src.width:,} x {src.height:,} px, more than "
                         f"geogan's limit of {pixels:,} pixels; cut it into parts "
                         f"(gdal_translate -srcwin, or gdal_retile.py), or raise the limit with "
                         "GEOGAN_MAX_PIXELS if the raster is real")


def check_chip_count(path: str | os.PathLike[str] | Path, count: int, size: int) -> None:
    """Refuse ``tile`` cutting more than ``GEOGAN_MAX_CHIPS`` candidate chips from one raster."""
    chips = limit("GEOGAN_MAX_CHIPS")
    if count > chips:
        raise InputError(f"{path} would be cut into {count:,} candidate chips of {size} px, more "
                         f"than geogan's limit of {chips:,}; pass a larger `size`, cut the "
                         "raster into parts first (gdal_translate -srcwin), or raise the limit "
                         "with GEOGAN_MAX_CHIPS")


def check_read_size(width: int, height: int, bands: int, what: str, hint: str) -> None:
    """Refuse reading a ``width`` x ``height`` window of ``bands`` bands in one piece when it
    holds more than ``GEOGAN_MAX_READ`` values; ``what`` names the window, ``hint`` the way out.
    """
    values = limit("GEOGAN_MAX_READ")
    if width * height * bands > values:
        raise InputError(f"{what} of {width:,} x {height:,} px and {bands} band(s) holds "
                         f"{width * height * bands:,} values, more than the {values:,} geogan "
                         f"reads at once; {hint}, or raise the limit with GEOGAN_MAX_READ")
