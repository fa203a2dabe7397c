"""Opening rasters for reading, shared by tiling, mosaicking, evaluation and translation.

Opening validates the georeference once (CRS present, north-up transform,
readable, a declared size within :mod:`geogan.limits`) and turns GDAL's errors into
one-line messages; :func:`files_read` lists the files GDAL reads for a raster (which no
output may replace, :func:`check_outputs_not_read`); :func:`gdal_env` sets
geogan's GDAL defaults where the environment leaves them. What geogan writes goes
through :mod:`geogan.sink`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import rasterio
from rasterio.errors import RasterioIOError

from geogan.errors import GeoreferenceError, InputError, first_line
from geogan.limits import check_declared_size
from geogan.rasterio_meta import check_georeferencing

log = logging.getLogger(__name__)


def open_raster(path: str | os.PathLike[str], *, allow_no_crs: bool = False,
                no_crs_option: bool = False, limits: bool = True) -> Any:
    """Open ``path`` for reading after checking it is a usable georeferenced raster.

    Raises :class:`InputError` for a missing or unreadable file, or one that declares more
    bands or pixels than :mod:`geogan.limits` allows (unless ``limits`` is false: for
    describing a raster, which reads no pixel), and :class:`GeoreferenceError` for GCP/RPC
    georeferencing, a missing CRS (unless ``allow_no_crs``; ``no_crs_option`` says the
    caller offers --allow-no-crs) or a rotated/sheared transform. Returns an open
    ``rasterio.DatasetReader``.
    """
    from geogan.inputs import GdalPath, as_input

    p = as_input(path)
    if not isinstance(p, GdalPath):
        if not p.exists():
            raise InputError(f"{p} does not exist; check the path")
        if p.is_dir():
            raise InputError(f"{p} is a folder, not a raster file")
    try:
        src = rasterio.open(str(p))
    except RasterioIOError as exc:
        raise InputError(f"{p} is not a readable raster ({first_line(exc)}); "
                         "check that the file is complete and is a GeoTIFF or another "
                         "format GDAL reads") from exc
    try:
        if limits:
            check_declared_size(src, p)
        check_georeferencing(src, p)
        if src.crs is None and not allow_no_crs:
            raise GeoreferenceError(f"{p} has no CRS; assign one (e.g. gdal_edit.py -a_srs "
                                    "EPSG:XXXX)" + (" or pass `allow_no_crs`"
                                                    if no_crs_option else ""))
        t = src.transform
        if t.b != 0 or t.d != 0:
            raise GeoreferenceError(f"{p} has a rotated or sheared transform; warp it north-up "
                                    "first (gdalwarp) and try again")
        if t.a <= 0 or t.e >= 0:
            log.warning("%s is not north-up with positive pixel width; outputs keep its "
                        "transform as is", p)
    except BaseException:
        src.close()
        raise
    return src


def check_readable(src: Any) -> None:
    """Read the last block of each band so a truncated file fails now, not halfway.

    The declared size is checked first (:func:`geogan.limits.check_declared_size`): a
    header declaring 100,000 bands would otherwise cost 100,000 reads.
    """
    from rasterio.windows import Window

    check_declared_size(src, src.name)
    try:
        w = Window(max(src.width - 1, 0), max(src.height - 1, 0), 1, 1)
        src.read(window=w)
    except RasterioIOError as exc:
        raise InputError(f"{src.name} is truncated or corrupt ({first_line(exc)}); "
                         "re-download or re-export it") from exc



def gdal_env(**defaults: Any) -> Any:
    """``rasterio.Env`` with geogan's defaults for options the environment does not set.

    GDAL configuration given in the environment (``GDAL_CACHEMAX``, ``GDAL_NUM_THREADS``...)
    always wins over geogan's defaults.
    """
    return rasterio.Env(**{k: v for k, v in defaults.items() if k not in os.environ})


#: Sidecar files GDAL reads beside a raster when they exist: PAM metadata, overviews, masks.
SIDECAR_SUFFIXES: tuple[str, ...] = (".aux.xml", ".ovr", ".msk")
#: Most VRTs :func:`files_read` opens to follow nested VRTs.
_MAX_VRTS = 256


def files_read(raster: Any) -> tuple[Path, ...]:
    """The local files GDAL reads for ``raster`` (an open dataset or a path).

    GDAL's own list (``src.files``: the file, a VRT's sources, sidecars it found), with
    the sidecars of a VRT's sources (:data:`SIDECAR_SUFFIXES`) and the sources of nested
    VRTs, which GDAL does not list. A path GDAL cannot open counts as itself only (its
    error comes from the command that reads it); ``/vsi...`` paths are left out.
    """
    from geogan.inputs import is_gdal_path

    found: dict[str, None] = {}
    opened: set[str] = set()
    pending: list[Any] = [raster]
    while pending:
        item = pending.pop()
        if isinstance(item, (str, os.PathLike)):
            name = os.fspath(item)
            opened.add(name)
            files = _gdal_files(name)
        else:
            opened.add(item.name)
            files = list(item.files) or [item.name]
        for f in files:
            if is_gdal_path(f) or f in found:
                continue
            found[f] = None
            found.update((f + s, None) for s in SIDECAR_SUFFIXES if os.path.exists(f + s))
            if f.lower().endswith(".vrt") and f not in opened and len(opened) < _MAX_VRTS:
                pending.append(f)
    return tuple(Path(f) for f in found)


def _gdal_files(path: str) -> list[str]:
    """``src.files`` of ``path``, or ``[path]`` when GDAL cannot open it as a raster."""
    from geogan.inputs import is_gdal_path

    if is_gdal_path(path) or not os.path.isfile(path):
        return [path]
    try:
        with rasterio.open(path) as src:
            return list(src.files) or [path]
    except Exception:  # not a raster (an AOI), or unreadable: the command says so later
        return [path]


def check_outputs_not_read(outputs: Iterable[str | os.PathLike[str]],
                           inputs: Iterable[Any]) -> None:
    """Refuse an output that is one of the files GDAL reads for ``inputs`` (paths or open
    datasets): the input, a VRT's source, a sidecar. The check every command shares."""
    from geogan.fileio import check_not_read

    reads = {(i if isinstance(i, (str, os.PathLike)) else i.name): files_read(i)
             for i in inputs}
    check_not_read(outputs, reads)
