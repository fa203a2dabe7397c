"""Everything around the pixels: band meaning, masks, metadata and what geogan refuses.

Tiling, mosaicking and translation share these rules, so a raster means the same
thing to every command:

- **Band meaning** (:class:`RasterMeta`): colour interpretation, description, band
  tags, scale/offset and units of each band, and the dataset tags, read from the
  source and written onto the output for the bands that are kept, in the order
  they are kept. GeoTIFFs are created with ``PHOTOMETRIC=RGB`` only for exactly
  three bands that are red, green and blue, and ``MINISBLACK`` otherwise, so no
  band becomes Alpha (GDAL's default for 4-band Byte pixel-interleaved TIFFs)
  unless it was one.
- **Validity** (:func:`read_valid`): GDAL's rule, read through rasterio's mask API.
  A pixel is invalid where every band is nodata, where a float band is NaN or
  infinite, where the per-dataset mask (internal or ``.msk`` sidecar) is 0, or
  where the alpha band is 0. The same rule is :mod:`geogan.evaluate`'s.
- **Alpha bands** (:func:`data_bands`) are never treated as colours: by default
  they are left out of the bands a command reads, select the valid pixels and
  are carried to the output as its mask (an internal mask, or nodata).
- **Refusals** (:func:`check_pixels`, :func:`check_georeferencing`): palette
  bands where they are not read as the RGB of their colour table (tiling and training
  read them so, :mod:`geogan.colortable`), complex and other data types the models
  cannot take, and GCP or RPC georeferencing (never read as an identity transform)
  fail up front with one line that says what to run instead.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.errors import NodataShadowWarning

from geogan.contract import choices, names
from geogan.errors import GeoreferenceError, InputError
from geogan.normalize import valid_mask

log = logging.getLogger(__name__)

#: Dataset tags that geogan writes itself and never copies from a source.
OWN_TAGS: tuple[str, ...] = (names.VALID_WINDOW_TAG,)

_RGB = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)


@dataclass(frozen=True)
class BandMeta:
    """What one band means: colour interpretation, description, tags, scale/offset, units."""

    colorinterp: ColorInterp = ColorInterp.undefined
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    scale: float = 1.0
    offset: float = 0.0
    units: str | None = None


@dataclass(frozen=True)
class RasterMeta:
    """The band meaning of a raster's bands (in order) and its dataset tags."""

    bands: tuple[BandMeta, ...]
    tags: dict[str, str] = field(default_factory=dict)

    def pick(self, bands: Sequence[int]) -> RasterMeta:
        """The meaning of 1-based ``bands``, in that order (``--bands`` keeps it)."""
        return RasterMeta(tuple(self.bands[b - 1] for b in bands), dict(self.tags))

    @property
    def colorinterp(self) -> tuple[ColorInterp, ...]:
        return tuple(b.colorinterp for b in self.bands)

    @classmethod
    def plain(cls, count: int, tags: dict[str, str] | None = None) -> RasterMeta:
        """Explicit meaning for ``count`` new bands: RGB for three, else gray then undefined."""
        if count == 3:
            interp: tuple[ColorInterp, ...] = _RGB
        else:
            interp = (ColorInterp.gray,) + (ColorInterp.undefined,) * (count - 1)
        return cls(tuple(BandMeta(ci) for ci in interp), dict(tags or {}))


def read_meta(src: Any) -> RasterMeta:
    """The :class:`RasterMeta` of an open rasterio dataset."""
    descriptions = src.descriptions
    units = src.units
    bands = []
    for i in range(src.count):
        bands.append(BandMeta(
            colorinterp=src.colorinterp[i],
            description=descriptions[i] or None,
            tags=dict(src.tags(i + 1)),
            scale=float(src.scales[i]),
            offset=float(src.offsets[i]),
            units=units[i] or None))
    tags = {k: v for k, v in src.tags().items() if k not in OWN_TAGS}
    return RasterMeta(tuple(bands), tags)


def photometric(colorinterp: Sequence[ColorInterp]) -> str:
    """GeoTIFF ``PHOTOMETRIC`` for bands meaning ``colorinterp``: RGB only for R, G, B."""
    return "RGB" if tuple(colorinterp) == _RGB else "MINISBLACK"


def write_meta(dst: Any, meta: RasterMeta) -> None:
    """Set the band meaning and tags of ``meta`` on ``dst``, opened for writing.

    ``meta`` must describe ``dst.count`` bands. An Alpha colour interpretation is
    not written: geogan carries alpha as the output's mask instead.
    """
    if len(meta.bands) != dst.count:
        raise ValueError(f"band meaning for {len(meta.bands)} bands given to a "
                         f"{dst.count}-band output")
    interp = [ColorInterp.undefined if b.colorinterp == ColorInterp.alpha else b.colorinterp
              for b in meta.bands]
    if tuple(dst.colorinterp) != tuple(interp):
        dst.colorinterp = interp
    if any(b.description for b in meta.bands):
        dst.descriptions = tuple(b.description or "" for b in meta.bands)
    if any(b.units for b in meta.bands):
        dst.units = tuple(b.units or "" for b in meta.bands)
    if any(b.scale != 1.0 or b.offset != 0.0 for b in meta.bands):
        dst.scales = tuple(b.scale for b in meta.bands)
        dst.offsets = tuple(b.offset for b in meta.bands)
    for i, b in enumerate(meta.bands, 1):
        if b.tags:
            dst.update_tags(i, **b.tags)
    tags = {k: v for k, v in meta.tags.items() if k not in OWN_TAGS}
    if tags:
        dst.update_tags(**tags)


@functools.lru_cache(maxsize=16)
def recorded_band_names(path: str, count: int) -> tuple[str, ...] | None:
    """What the ``count`` bands of raster ``path`` are, as a checkpoint records a domain's.

    Each band's colour interpretation when it is a colour (red, nir...), else its
    description, else ``""``. None when the file cannot be read, has another band count,
    or says nothing beyond GDAL's defaults (gray then undefined, no descriptions).
    """
    import rasterio

    try:
        with warnings.catch_warnings():  # a chip picture without georeference is fine here
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                if count == 3 and src.count == 1 and src.colorinterp[0] == ColorInterp.palette:
                    return ("red", "green", "blue")  # read as the RGB of its colour table
                if src.count != count:
                    return None
                interp, descriptions = list(src.colorinterp), list(src.descriptions)
    except rasterio.errors.RasterioError:
        return None
    plain = (ColorInterp.undefined, ColorInterp.palette, ColorInterp.alpha)
    names = tuple(ci.name if ci not in plain else (d or "")
                  for ci, d in zip(interp, descriptions, strict=True))
    default = all(ci in (ColorInterp.gray, *plain) for ci in interp) and not any(descriptions)
    return None if default else names


# --------------------------------------------------------------------------- bands and masks


def alpha_band(src: Any) -> int | None:
    """The 1-based index of ``src``'s alpha band, or None."""
    for i, ci in enumerate(src.colorinterp, 1):
        if ci == ColorInterp.alpha:
            return i
    return None


def data_bands(src: Any) -> tuple[int, ...]:
    """All 1-based bands of ``src`` except its alpha band (the default bands to read)."""
    alpha = alpha_band(src)
    return tuple(b for b in range(1, src.count + 1) if b != alpha)


def has_mask(src: Any, bands: Sequence[int] | None = None) -> bool:
    """Whether ``bands`` of ``src`` have a per-dataset mask or an alpha band (not just nodata)."""
    flags = src.mask_flag_enums
    picks = bands if bands is not None else range(1, src.count + 1)
    if any(MaskFlags.per_dataset in flags[b - 1] or MaskFlags.alpha in flags[b - 1]
           for b in picks):
        return True
    return alpha_band(src) is not None


def read_valid(src: Any, bands: Sequence[int], window: Any, data: np.ndarray,
               nodata: float | None = None, masked: bool | None = None) -> np.ndarray:
    """``(h, w)`` booleans: pixels of ``window`` that hold data (GDAL's rule, see module doc).

    ``data`` is what was read for ``bands`` in ``window`` ``(C, h, w)``. ``masked``
    (default: :func:`has_mask`) says whether to read the mask API as well.
    """
    valid = valid_mask(data, nodata)
    if masked is None:
        masked = has_mask(src, bands)
    if masked:
        with warnings.catch_warnings():  # nodata shadowing alpha: the alpha is read below
            warnings.simplefilter("ignore", NodataShadowWarning)
            valid &= (src.read_masks(list(bands), window=window) != 0).all(axis=0)
        alpha = alpha_band(src)
        if alpha is not None and alpha not in bands:
            valid &= src.read(alpha, window=window) != 0
    return valid


# --------------------------------------------------------------------------- refusals


def check_pixels(src: Any, path: str | Path, bands: Sequence[int], option: str = "`bands`"
                 ) -> None:
    """Refuse palette bands and data types the models cannot take, in one line.

    Band numbers out of range are left to the caller's own check. Readers that read a
    palette band as the RGB of its colour table (:mod:`geogan.colortable`: tiling and
    training) check the expanded dataset, so a palette band here is one read as indices.
    """
    bands = [b for b in bands if 1 <= b <= src.count]
    for b in bands:
        if src.colorinterp[b - 1] == ColorInterp.palette:
            raise InputError(f"{path} is a palette (colour table) raster: band {b} holds "
                             "colour indices, not colours, and this command does not read it "
                             "as colours; expand it first, e.g. gdal_translate -expand rgb "
                             f"{Path(path).name} expanded.tif")
    for b in bands:
        dtype = str(src.dtypes[b - 1])
        if dtype.startswith("complex"):
            raise InputError(f"{path} has complex ({dtype}) pixels, which geogan cannot "
                             "translate; take the amplitude first, e.g. gdal_calc.py -A "
                             f"{Path(path).name} --calc=\"abs(A)\" --type=Float32 "
                             "--outfile amplitude.tif")
        if dtype not in choices.RASTER_DTYPES:
            raise InputError(f"{path} band {b} is {dtype}, which geogan cannot take; convert "
                             f"it (e.g. gdal_translate -ot Float32) to one of "
                             f"{', '.join(choices.RASTER_DTYPES)}")


def check_georeferencing(src: Any, path: str | Path) -> None:
    """Refuse GCP- or RPC-georeferenced rasters, which have no geotransform to keep.

    An identity geotransform with GCPs or RPCs present counts as GCP/RPC
    georeferencing (GDAL would otherwise read the pixels as lying at 0, 0).
    """
    if not src.transform.is_identity:
        return
    name = Path(path).name
    gcps, gcp_crs = src.gcps
    if gcps:
        crs = gcp_crs or src.crs
        target = f"-t_srs {crs.to_string()} " if crs is not None and crs.to_string() else ""
        raise GeoreferenceError(f"{path} is georeferenced by {len(gcps)} ground control "
                                "points, not a geotransform; warp it onto a north-up grid "
                                f"first: gdalwarp -tps {target}{name} warped.tif")
    if src.rpcs is not None:
        raise GeoreferenceError(f"{path} is georeferenced by RPCs (rational polynomial "
                                "coefficients), not a geotransform; orthorectify it first: "
                                f"gdalwarp -rpc -t_srs EPSG:4326 {name} warped.tif (add -to "
                                "RPC_DEM=dem.tif for terrain)")
