"""What translation knows of an input once it is checked: :class:`CheckedInput`.

:func:`read_input` runs every check of one input that depends on the file (readable,
finite pixels, the bands the generator takes, the part translated) and gathers what the
translation then needs, once per input per command: a batch checks every input before
any work starts and translates each from what its check found, without opening it to
check it again. Checks that depend only on the options and the checkpoint (``tile``,
``band_names``, the device) are the caller's, once per command.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geogan.checkpoint import LoadedGenerator
from geogan.errors import InputError
from geogan.translate.compat import open_input, output_meta, select_input_bands
from geogan.translate.config import TranslateConfig
from geogan.translate.lineage import check_ground
from geogan.translate.nodata import given_nodata, output_nodata
from geogan.translate.subset import Subset, plan_view

if TYPE_CHECKING:
    from geogan.rasterio_meta import RasterMeta

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckedInput:
    """What translation needs to know of an input: its bands, grid, nodata and meaning."""

    indexes: list[int]
    profile: dict[str, Any]  # the input's, with the grid of the part translated
    nodata: float | None
    masked: bool
    meta: RasterMeta
    subset: Subset | None
    vrt: str | None  # the VRT of the part translated, None for the whole input
    tags: dict[str, str]  # the input's metadata (its provenance, if geogan made it)
    gsd_m: float | None  # the input's ground resolution, metres per pixel

    @property
    def width(self) -> int:
        return int(self.profile["width"])

    @property
    def height(self) -> int:
        return int(self.profile["height"])


def read_input(path: Path, generator: LoadedGenerator, config: TranslateConfig) -> CheckedInput:
    """Open and check ``path``; its bands, nodata, band meaning and the part translated.

    ``config.band_names`` must have been checked against the generator
    (:func:`~geogan.translate.compat.check_band_names`).
    """
    from geogan.colortable import expanded_band, open_expanded
    from geogan.rasterio_io import check_readable
    from geogan.rasterio_meta import check_pixels, data_bands, has_mask, read_meta

    with contextlib.ExitStack() as stack:
        src = stack.enter_context(open_input(path))
        check_readable(src)
        band = expanded_band(src, path, config.bands)
        pixels, bands = src, config.bands
        if band is not None:  # a palette raster: read as the RGB of its colour table
            pixels, bands = open_expanded(src, band, path, stack), None
        check_pixels(pixels, path, bands or data_bands(pixels))
        indexes = select_input_bands(pixels.count, pixels.dtypes, path, generator, bands,
                                     data_bands(pixels))
        profile = dict(src.profile)
        if band is not None:
            profile.update(count=3, dtype="uint8", nodata=None)
        meta = output_meta(read_meta(pixels), indexes, pixels.dtypes[indexes[0] - 1],
                           generator, config.band_names)
        tags = dict(src.tags())
        gsd_m, _ = check_ground(generator, src, path.name, config)
        subset, vrt = plan_view(src, path, config)
        if subset is not None:
            profile.update(width=subset.width, height=subset.height, transform=subset.transform)
            log.info("%s: translating its block of %d x %d px at column %d, row %d", path,
                     subset.width, subset.height, subset.col, subset.row)
        return CheckedInput(indexes, profile, pixels.nodata, has_mask(pixels, indexes), meta,
                            subset, vrt, tags, gsd_m)


def translation_profile(src: CheckedInput, output_path: Path, driver: str,
                        generator: LoadedGenerator, config: TranslateConfig) -> dict[str, Any]:
    """The output's profile (grid of the part translated, nodata, band meaning, options)."""
    from geogan.sink import check_creation_options, num_threads, output_profile

    if driver != "GTiff" and config.cog:
        raise InputError(f"`cog` writes GeoTIFF; give -o {output_path.stem}.tif or drop `cog`")
    out_nodata = (given_nodata(config.nodata, generator.out_norm) if config.nodata is not None
                  else output_nodata(src.nodata, generator.out_norm))
    profile = output_profile(src.profile, count=generator.out_bands,
                             dtype=generator.out_norm.dtype, nodata=out_nodata,
                             compress=config.compress, meta=src.meta,
                             creation_options=config.creation_options
                             if driver == "GTiff" and not config.cog else ())
    check_creation_options(profile, config.creation_options, "COG" if config.cog else driver)
    profile["num_threads"] = num_threads(config.threads)
    return profile
