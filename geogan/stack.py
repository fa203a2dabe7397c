"""Several co-registered rasters read as one: a stacked view on the first raster's grid.

``train --a-stack`` and ``translate --stack`` give a domain more rasters than one (a SAR
image and an older optical one, say). geogan writes a VRT that holds the first raster's
data bands, then each stack raster's data bands in the order given, all on the first
raster's grid: a stack raster on another grid is resampled through a warped view, with
the resampling ``--pair`` and ``--align-to`` use. Training and translation then read that
VRT as if it were one raster, and the checkpoint records the layers
(:func:`stack_record`) so translate can refuse a stack laid out otherwise.

Validity: a pixel of the stack holds data only where every raster of it does, each by
geogan's rule (:func:`geogan.rasterio_meta.read_valid`: its nodata, per-dataset mask or
alpha band), a resampled raster also only inside its footprint. When any raster can have
invalid pixels, geogan writes that validity once as a mask beside the VRT and gives the
VRT it as its per-dataset mask, so training (``--max-nodata``, the sampler's weights, the
statistics) and translation (the output's nodata or mask) read it like any raster's mask.
The VRT keeps the first raster's nodata value; its alpha band is not a data band.

Pairing (several inputs): each ``--stack`` value is one layer. A file is that layer of
every input; a folder, a glob or an ``@LIST`` gives each input the file with its file-name
stem (``tile_07.tif`` -> ``tile_07.*``); none or several such files is an error.
"""

from __future__ import annotations

import atexit
import glob
import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

from geogan.contract.stacking import describe_stack
from geogan.errors import GeoreferenceError, InputError

log = logging.getLogger(__name__)

_FOLDER: list[Path] = []


@dataclass(frozen=True)
class Layer:
    """One raster of a stack: its file name, data bands and what each band is."""

    source: str
    bands: int
    names: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "bands": self.bands}


def stack_record(layers: Sequence[Layer]) -> list[dict[str, Any]]:
    """The checkpoint's ``stack`` of a domain: ``[{"source": name, "bands": n}, ...]``."""
    return [layer.to_json() for layer in layers]


def _scratch() -> Path:
    """A folder for this process's stacked views, removed when it exits (geogan made it)."""
    if not _FOLDER:
        folder = Path(tempfile.mkdtemp(prefix="geogan-stack-"))
        atexit.register(shutil.rmtree, folder, True)
        _FOLDER.append(folder)
    return _FOLDER[0]


def stack_partners(inputs: Sequence[Path], values: Sequence[Path | str],
                   option: str) -> list[list[Path]]:
    """The stack rasters of each of ``inputs``: one per value, paired as the module says."""
    layers: list[list[Path]] = []
    for value in values:
        text = str(value)
        p = Path(text)
        if p.is_file() and not text.startswith("@"):
            layers.append([p] * len(inputs))
            continue
        if p.is_dir():
            found = [f for f in sorted(p.iterdir()) if f.is_file()]
        elif text.startswith("@"):
            from geogan.inputs import read_files_from

            found = [Path(f) for f in read_files_from(Path(text[1:]), f"{option} list",
                                                      relative_to_list=True)]
        elif any(ch in text for ch in "*?["):
            found = sorted(Path(f) for f in glob.glob(text, recursive=True) if Path(f).is_file())
        else:
            raise InputError(f"{option} {text} does not exist; check the path")
        layers.append([_by_stem(inp, found, option, text) for inp in inputs])
    return [[layer[i] for layer in layers] for i in range(len(inputs))]


def _by_stem(inp: Path, found: Sequence[Path], option: str, text: str) -> Path:
    same = [f for f in found if f.stem == inp.stem and f.suffix.lower() not in (".aux", ".xml")]
    if len(same) != 1:
        what = "no file" if not same else f"{len(same)} files"
        raise InputError(f"{option} {text} has {what} named like {inp.name} (stem "
                         f"{inp.stem!r}); stack files are paired with inputs by file-name stem: "
                         "give exactly one per input, or a single file for all")
    return same[0]


def stacked_inputs(inputs: Sequence[Path], values: Sequence[Path | str], option: str,
                   resampling: str) -> tuple[list[Path], list[Layer] | None]:
    """``inputs`` as stacked views (``inputs`` themselves without ``values``) and the layers
    of the first one (None without a stack). Every input's stack has the first's layout."""
    if not values:
        return list(inputs), None
    partners = stack_partners(inputs, values, option)
    views: list[Path] = []
    first_layers: list[Layer] | None = None
    for k, (inp, others) in enumerate(zip(inputs, partners, strict=True)):
        folder = _scratch() / f"{len(list(_scratch().iterdir()))}_{k}"
        folder.mkdir()
        view, layers = build_stack(inp, others, resampling, folder, option)
        if first_layers is None:
            first_layers = layers
        elif [(x.bands, x.names) for x in layers] != [(x.bands, x.names) for x in first_layers]:
            raise InputError(f"{option}: the stack of {inp} ({describe(layers)}) differs from "
                             f"that of {inputs[0]} ({describe(first_layers)}); give every "
                             "input the same kinds of rasters in the same order")
        views.append(view)
    log.info("%s: %d input(s) read as stacks of %s", option, len(views),
             describe(first_layers or []))
    return views, first_layers


def describe(layers: Sequence[Layer]) -> str:
    """``sar.tif (1 band) + optical.tif (4 bands)``, for messages."""
    return describe_stack(stack_record(layers))


def build_stack(first: Path, others: Sequence[Path], resampling: str, folder: Path,
                option: str = "`stack`") -> tuple[Path, list[Layer]]:
    """Write the stacked VRT of ``first`` and ``others`` into ``folder``; -> (path, layers).

    The VRT keeps ``first``'s file name (the rules that go by the suffix still apply; GDAL
    knows a VRT by its content), its grid, CRS and nodata; the others' bands follow,
    resampled (``resampling``) onto that grid unless they already lie on it.
    """
    import rasterio

    from geogan.rasterio_io import open_raster
    from geogan.stack_valid import write_valid_mask

    with open_raster(first, allow_no_crs=True) as src:
        grid = (src.crs, src.transform, src.width, src.height)
        nodata = src.nodata
        sources = [_source(first, src, None, folder, 0, resampling, option)]
        for i, other in enumerate(others, 1):
            with open_raster(other) as osrc:
                sources.append(_source(other, osrc, grid, folder, i, resampling, option))
    dtype = np.result_type(*[np.dtype(s["dtype"]) for s in sources]).name
    mask = write_valid_mask(sources, grid, folder / f"{first.name}.valid.tif", first)
    path = folder / first.name
    path.write_text(_vrt_xml(grid, nodata, dtype, sources, mask), encoding="utf-8")
    layers = [Layer(s["name"], len(s["bands"]), tuple(s["names"])) for s in sources]
    with rasterio.open(path) as check:  # GDAL reads it back, or the user learns why now
        if check.count != sum(x.bands for x in layers):
            raise InputError(f"the stacked view of {first} could not be read back")
    return path, layers


def _source(path: Path, src: Any, grid: Any, folder: Path, i: int, resampling: str,
            option: str) -> dict[str, Any]:
    """One raster's part of the stack: the file read (``path`` or its warped view)."""
    from geogan.rasterio_meta import data_bands, has_mask, recorded_band_names

    bands = list(data_bands(src))
    dtypes = {src.dtypes[b - 1] for b in bands}
    if len(dtypes) > 1:
        raise InputError(f"{option} {path} mixes data types ({', '.join(sorted(dtypes))}); "
                         "give rasters whose bands share one type")
    names = recorded_band_names(str(path), src.count) or tuple("" for _ in range(src.count))
    out = {"name": path.name, "file": str(path.resolve()), "bands": bands,
           "names": [names[b - 1] for b in bands], "dtype": src.dtypes[bands[0] - 1],
           "nodata": src.nodata, "masked": has_mask(src, bands), "warped": False,
           "colorinterp": [src.colorinterp[b - 1].name.capitalize() for b in bands]}
    if grid is None:
        return out
    crs, transform, width, height = grid
    if src.crs == crs and src.transform.almost_equals(transform, 1e-9) \
            and (src.width, src.height) == (width, height):
        return out
    if crs is None or src.crs is None:
        raise GeoreferenceError(f"{option} {path} is not on the grid of the first raster and "
                                "one of them has no CRS to resample by; assign one "
                                "(gdal_edit.py -a_srs EPSG:XXXX)")
    import rasterio.shutil

    from geogan.tiling.config import TileConfig
    from geogan.tiling.views import _warped

    warped = folder / f"{i}_{path.stem}.warped.vrt"
    with _warped(src, path, crs, transform, width, height, TileConfig(resampling=resampling)) \
            as vrt:
        rasterio.shutil.copy(vrt, warped, driver="VRT")
        out["nodata"] = vrt.nodata
    out["warped"] = True  # outside its footprint: nodata (see tiling.views._warped)
    log.info("%s %s is resampled (%s) onto the grid of the first raster", option, path,
             resampling)
    out["file"] = str(warped)
    return out


def _text(value: float) -> str:
    from geogan.translate.subset import _nodata_text

    return _nodata_text(value)


def _vrt_xml(grid: Any, nodata: float | None, dtype: str,
             sources: Sequence[dict[str, Any]], mask: Path | None = None) -> str:
    from geogan.vrt import GDAL_TYPES

    crs, transform, width, height = grid
    gdal_type = GDAL_TYPES.get(dtype)
    if gdal_type is None:
        raise InputError(f"the stacked rasters together need {dtype} pixels, which geogan "
                         "cannot take; convert them to one type first (gdal_translate -ot)")
    rect = (f'<SrcRect xOff="0" yOff="0" xSize="{width}" ySize="{height}"/>'
            f'<DstRect xOff="0" yOff="0" xSize="{width}" ySize="{height}"/>')
    parts = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">']
    if crs is not None:
        parts.append(f"<SRS>{escape(crs.to_wkt())}</SRS>")
    parts.append("<GeoTransform>" + ", ".join(repr(float(v)) for v in transform.to_gdal())
                 + "</GeoTransform>")
    k = 0
    for n, s in enumerate(sources):
        for b, name, ci in zip(s["bands"], s["names"], s["colorinterp"], strict=True):
            k += 1
            parts.append(f'<VRTRasterBand dataType="{gdal_type}" band="{k}">')
            if nodata is not None:
                parts.append(f"<NoDataValue>{_text(nodata)}</NoDataValue>")
            if n == 0:
                parts.append(f"<ColorInterp>{ci}</ColorInterp>")
            else:  # what the band is, and where it came from: recorded as its band name
                label = f"{Path(s['name']).stem}:{name or f'band{b}'}"
                parts.append(f"<Description>{escape(label)}</Description>")
            parts.append(f'<ComplexSource><SourceFilename relativeToVRT="0">'
                         f"{escape(s['file'])}</SourceFilename><SourceBand>{b}</SourceBand>")
            if s["nodata"] is not None:
                parts.append(f"<NODATA>{_text(s['nodata'])}</NODATA>")
            parts.append(f"{rect}</ComplexSource></VRTRasterBand>")
    if mask is not None:  # the stack's validity (geogan.stack_valid): its per-dataset mask
        parts.append('<MaskBand><VRTRasterBand dataType="Byte"><SimpleSource>'
                     f'<SourceFilename relativeToVRT="0">{escape(str(mask))}</SourceFilename>'
                     f"<SourceBand>1</SourceBand>{rect}</SimpleSource></VRTRasterBand>"
                     "</MaskBand>")
    parts.append("</VRTDataset>")
    return "".join(parts)
