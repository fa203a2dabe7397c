"""Whether a raster suits the checkpoint's generator (bands, dtype, tile size).

Also what the bands of its translation then mean (:func:`output_meta`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from geogan.checkpoint import LoadedGenerator
from geogan.contract.formats import readable_without_crs
from geogan.errors import InputError
from geogan.translate.config import TranslateConfig

if TYPE_CHECKING:
    from geogan.rasterio_meta import RasterMeta

log = logging.getLogger(__name__)

#: numpy dtype -> GDAL's type name (for gdal_translate -ot).
_GDAL_TYPE_NAMES = {"uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16",
                    "uint32": "UInt32", "int32": "Int32", "float32": "Float32",
                    "float64": "Float64"}


def open_input(path: str | os.PathLike[str]) -> Any:
    """Open an input raster; a plain picture (PNG/JPEG) may lack a georeference."""
    from geogan.rasterio_io import open_raster

    return open_raster(path, allow_no_crs=readable_without_crs(path))


def select_input_bands(count: int, dtypes: Sequence[str], path: Path,
                       generator: LoadedGenerator, bands: tuple[int, ...] | None,
                       default: Sequence[int] | None = None) -> list[int]:
    """1-based bands to read, checked against the generator's input band count and dtype.

    Without ``bands`` the ``default`` bands are read (all bands when None; callers
    pass :func:`geogan.rasterio_meta.data_bands`, which leaves an alpha band out).
    """
    if bands:
        indexes = list(bands)
    else:
        indexes = list(default) if default is not None else list(range(1, count + 1))
    for b in indexes:
        if b > count:
            raise InputError(f"`bands` {b} is out of range: {path} has {count} band(s)")
    want = generator.in_norm.bands
    if len(indexes) != want:
        extra = " besides its alpha band" if not bands and len(indexes) < count else ""
        hint = f"; use a {want}-band raster or a checkpoint trained on {len(indexes)} band(s)"
        if bands:
            hint = f"; list {want} bands in `bands`"
        elif len(indexes) > want:
            hint = (f"; pick {want} of them with `bands`, e.g. `bands` "
                    f"{','.join(str(i) for i in indexes[:want])}")
        elif extra and count == want:
            hint += (f", or pass `bands` {','.join(str(i) for i in range(1, count + 1))} to "
                     "feed the alpha band as data")
        raise InputError(f"{path} has {len(indexes)} band(s){extra} but the checkpoint's "
                         f"{generator.direction} generator expects {want}{hint}")
    kinds = {str(np.dtype(dtypes[b - 1])) for b in indexes}
    if len(kinds) > 1:
        raise InputError(f"{path} mixes band dtypes ({', '.join(sorted(kinds))}); "
                         "convert it to one dtype first")
    dtype = kinds.pop()
    expected = str(np.dtype(generator.in_norm.dtype))
    if dtype != expected:
        raise InputError(f"{path} is {dtype} but the checkpoint's {generator.direction} generator "
                         f"was trained on {expected} rasters; convert it (e.g. gdal_translate "
                         f"-ot {_GDAL_TYPE_NAMES.get(expected, expected)} -scale) or use a "
                         "matching checkpoint")
    return indexes



def fit_tile(config: TranslateConfig, width: int, height: int, multiple: int) -> TranslateConfig:
    """``config`` with ``tile`` clamped to the raster (rounded up to ``multiple``).

    A window larger than the raster only adds mirrored padding: it costs time and memory
    and changes nothing for the better.
    """
    need = -(-max(width, height, 8) // multiple) * multiple
    if config.tile <= need:
        return config
    log.info("`tile` %d is larger than the %dx%d px raster; using %d", config.tile, width,
             height, need)
    return dataclasses.replace(config, tile=need, overlap=min(config.overlap, need // 2))


def check_tile(generator: LoadedGenerator, tile: int) -> None:
    """Fail early when the generator cannot take ``tile``-pixel windows.

    Generators carry a ``size_multiple`` attribute (4 for ResNet, 256 for U-Net 256).
    """
    multiple = int(getattr(generator.module, "size_multiple", 1))
    if tile % multiple:
        arch = generator.generator_meta.arch if generator.generator_meta else "this"
        suggestion = max(multiple, round(tile / multiple) * multiple)
        raise InputError(f"`tile` {tile} does not suit the {arch} generator; use a multiple of "
                         f"{multiple}, e.g. `tile` {suggestion}")


def output_meta(src_meta: RasterMeta, indexes: Sequence[int], in_dtype: str,
                generator: LoadedGenerator,
                band_names: Sequence[str] | None = None) -> RasterMeta:
    """Band meaning of a translation: named bands, else the fed bands' when the count is kept.

    ``band_names`` (``--band-names``), else the names the checkpoint records for its
    target domain (``band_names`` of the domain), name the output bands (see
    :func:`named_meta`). Without names, a generator that keeps the number of bands
    (NAIP 2009 -> NAIP 2020, RGB -> RGB) keeps each band's colour interpretation,
    description and tags; scale, offset and units too when the dtype is also kept (the
    values are in the same units). Otherwise the bands are new: RGB for three, gray
    then undefined for other counts. Dataset tags are kept either way. ``band_names``
    must have been checked (:func:`check_band_names`, once per command).
    """
    from geogan.rasterio_meta import BandMeta, RasterMeta

    fed = src_meta.pick(indexes)
    names = list(band_names) if band_names else _recorded_names(generator)
    if names:
        return named_meta(names, fed.tags)
    if generator.out_bands != len(indexes):
        return RasterMeta.plain(generator.out_bands, fed.tags)
    if str(np.dtype(generator.out_norm.dtype)) == str(np.dtype(in_dtype)):
        return fed
    return RasterMeta(tuple(BandMeta(b.colorinterp, b.description, b.tags)
                            for b in fed.bands), fed.tags)


def check_band_names(generator: LoadedGenerator, names: Sequence[str] | None) -> None:
    """Fail unless ``names`` (``band_names``) name each band the generator writes."""
    if names and len(names) != generator.out_bands:
        raise InputError(f"`band_names` names {len(names)} band(s) but the "
                         f"{generator.direction} generator writes {generator.out_bands}; "
                         f"give {generator.out_bands} names")


#: Band names that are colour interpretations, and other words for some of them.
_COLOUR_ALIASES = {"grey": "gray", "near-infrared": "nir", "red-edge": "rededge"}


def colour_of(name: str) -> Any:
    """The ``rasterio.enums.ColorInterp`` a band name means, or None (not a colour name).

    Names are GDAL's colour interpretations, any case (red, green, blue, gray, nir,
    rededge, swir, pan, coastal...); palette, alpha and undefined are not colours here.
    """
    from rasterio.enums import ColorInterp

    key = _COLOUR_ALIASES.get(name.strip().lower(), name.strip().lower())
    for ci in ColorInterp:
        if ci.name.lower() == key and ci.name not in ("undefined", "palette", "alpha"):
            return ci
    return None


def named_meta(names: Sequence[str], tags: dict[str, str] | None = None) -> RasterMeta:
    """Bands described by ``names``, with the colour interpretation of colour names.

    An empty name leaves its band undescribed.
    """
    from rasterio.enums import ColorInterp

    from geogan.rasterio_meta import BandMeta, RasterMeta

    bands = tuple(BandMeta(colour_of(n) or ColorInterp.undefined, n or None) for n in names)
    return RasterMeta(bands, dict(tags or {}))


def _recorded_names(generator: LoadedGenerator) -> list[str] | None:
    """The band names the checkpoint records for the generator's target domain, if any."""
    target = generator.sides()[1]
    names = target.band_names if target is not None else None
    if not isinstance(names, list) or len(names) != generator.out_bands:
        return None
    return [str(n) for n in names]
