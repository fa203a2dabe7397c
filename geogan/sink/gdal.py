"""GDAL outputs shared by translate, mosaic and tile: every GeoTIFF geogan writes.

Output profiles are derived from an input profile, never rebuilt by hand, so CRS and
transform are inherited unchanged; ``--co`` creation options are parsed, applied last
and tried on GDAL's driver first; rasters are written atomically (a COG or another
driver by copy) and a failure names the user's file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.errors import RasterioIOError

from geogan.contract.choices import COMPRESSIONS, PREDICTOR_CODECS
from geogan.contract.formats import format_of_driver
from geogan.errors import InputError, first_line
from geogan.fileio import (
    OutputGroup,
    atomic_output,
    gdal_errors,
    temp_path,
    verify_raster,
    write_error,
)
from geogan.inputs import GdalOutput
from geogan.rasterio_meta import RasterMeta, photometric

#: Creation options geogan sets itself; ``--co`` may override any of them.
CreationOptions = tuple[tuple[str, str], ...]
BLOCK_SIZE = 256


def output_profile(src_profile: dict[str, Any], *, count: int | None = None,
                   dtype: str | None = None, nodata: float | None | str = "same",
                   compress: str = "zstd", width: int | None = None,
                   height: int | None = None, transform: Any = None,
                   meta: RasterMeta | None = None,
                   creation_options: CreationOptions = ()) -> dict[str, Any]:
    """A tiled, compressed GeoTIFF profile derived from ``src_profile``.

    CRS and transform are inherited; ``count``/``dtype``/``nodata`` replace the
    source's when given (``nodata="same"`` keeps it). BIGTIFF=IF_SAFER, and a
    predictor suited to the dtype (2 for integers, 3 for floats). ``PHOTOMETRIC``
    follows the band meaning ``meta`` (see :mod:`geogan.rasterio_meta`: RGB only for
    red, green, blue; MINISBLACK otherwise, so no band becomes Alpha); without
    ``meta`` it is MINISBLACK. Write ``meta`` onto the opened output with
    :func:`geogan.rasterio_meta.write_meta`.
    """
    if compress not in COMPRESSIONS:
        raise InputError(f"unknown compression {compress!r}; choose one of "
                         f"{', '.join(COMPRESSIONS)}")
    profile = {k: v for k, v in src_profile.items()
               if k in ("crs", "transform", "width", "height", "count", "dtype", "nodata")}
    if count is not None:
        profile["count"] = count
    if dtype is not None:
        profile["dtype"] = str(np.dtype(dtype))
    if nodata != "same":
        profile["nodata"] = nodata
    if width is not None:
        profile["width"] = width
    if height is not None:
        profile["height"] = height
    if transform is not None:
        profile["transform"] = transform
    floating = np.issubdtype(np.dtype(profile["dtype"]), np.floating)
    profile.update(driver="GTiff", tiled=True, blockxsize=BLOCK_SIZE, blockysize=BLOCK_SIZE,
                   compress=compress, bigtiff="IF_SAFER",
                   interleave="pixel" if profile["count"] > 1 else "band",
                   photometric=photometric(meta.colorinterp) if meta is not None
                   else "MINISBLACK")
    if compress in PREDICTOR_CODECS:
        profile["predictor"] = 3 if floating else 2
    profile.update(creation_kwargs(creation_options))  # the user's --co last: they win
    return profile


def creation_kwargs(creation_options: CreationOptions) -> dict[str, Any]:
    """``--co`` pairs as rasterio keyword arguments (``BLOCKXSIZE=512`` -> ``blockxsize=512``)."""
    return {key.lower(): int(value) if value.isdigit() else value
            for key, value in creation_options}


def parse_creation_options(items: Iterable[str]) -> CreationOptions:
    """``["COMPRESS=JPEG", "JPEG_QUALITY=90"]`` -> ``(("COMPRESS", "JPEG"), ("JPEG_QUALITY",
    "90"))``."""
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError(f"`co` {item!r} is not KEY=VALUE; write e.g. `co` JPEG_QUALITY=90")
        pairs.append((key.strip().upper(), value.strip()))
    return tuple(pairs)


def check_creation_options(profile: dict[str, Any], creation_options: CreationOptions,
                           driver: str = "GTiff") -> None:
    """Fail with one line when GDAL's ``driver`` rejects one of ``creation_options``.

    GDAL only warns about an unknown option or value and then ignores it; geogan tries
    the options on a small in-memory raster first and turns those warnings into an error.
    """
    if not creation_options:
        return
    import uuid

    rejected: list[str] = []

    class _Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            text = record.getMessage()
            if "CPLE_NotSupported" in text or "CPLE_IllegalArg" in text:
                rejected.append(text.split(" in ", 1)[-1])

    probe = {**profile, "driver": "GTiff", "width": 64, "height": 64}
    probe.pop("transform", None)
    given = {k.lower() for k, _ in creation_options}
    for key in ("blockxsize", "blockysize") if probe.get("tiled") else ("blockysize",):
        if key not in given:
            probe[key] = 16
    if driver != "GTiff":
        for key, _ in creation_options:
            probe.pop(key.lower(), None)
    handler = _Catch()
    lg = logging.getLogger("rasterio._env")
    level, propagate = lg.level, lg.propagate
    lg.addHandler(handler)
    lg.setLevel(logging.WARNING)  # GDAL's warnings must reach the handler whatever -v says
    lg.propagate = False
    name = f"/vsimem/geogan-co-{uuid.uuid4().hex}.tif"
    try:
        with rasterio.Env(CPL_DEBUG=False), warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(name, "w", **probe) as dst:
                dst.write(np.zeros((dst.count, 64, 64), dtype=dst.dtypes[0]))
            if driver != "GTiff":
                from rasterio.shutil import copy as rio_copy

                rio_copy(name, name + ".cog.tif", driver=driver,
                         **creation_kwargs(creation_options))
    except (RasterioIOError, rasterio.errors.RasterioError, ValueError) as exc:
        rejected.append(first_line(exc))
    finally:
        lg.removeHandler(handler)
        lg.setLevel(level)
        lg.propagate = propagate
        for n in (name, name + ".cog.tif"):
            with contextlib.suppress(Exception):
                rasterio.shutil.delete(n)
    if rejected:
        given = " ".join(f"--co {k}={v}" for k, v in creation_options)
        raise InputError(f"GDAL's {driver} driver rejects {given}: {rejected[0]}; see "
                         f"https://gdal.org/drivers/raster/{driver.lower()}.html for its "
                         "creation options")


def num_threads(threads: int | None = None) -> str:
    """GDAL's NUM_THREADS for compression: ``threads``, else $GDAL_NUM_THREADS, else all CPUs."""
    if threads:
        return str(threads)
    return os.environ.get("GDAL_NUM_THREADS", "ALL_CPUS")


def convert_to_cog(src_path: str | os.PathLike[str], dst_path: str | os.PathLike[str],
                   compress: str = "zstd", creation_options: CreationOptions = ()) -> None:
    """Copy a GeoTIFF to a Cloud Optimized GeoTIFF with overviews (GDAL's COG driver)."""
    from rasterio.shutil import copy as rio_copy

    with rasterio.open(src_path) as src:
        floating = np.issubdtype(np.dtype(src.dtypes[0]), np.floating)
    options: dict[str, Any] = dict(compress=compress.upper(), overviews="AUTO", blocksize=512,
                                   bigtiff="IF_SAFER", resampling="average")
    if compress in PREDICTOR_CODECS:
        options["predictor"] = "FLOATING_POINT" if floating else "YES"
    options.update(creation_kwargs(creation_options))
    rio_copy(src_path, dst_path, driver="COG", **options)


@contextlib.contextmanager
def atomic_raster(path: str | os.PathLike[str], *, overwrite: bool = False, cog: bool = False,
                  compress: str = "zstd", driver: str = "GTiff",
                  creation_options: CreationOptions = (),
                  group: OutputGroup | None = None) -> Iterator[Path]:
    """Yield the path to write a GeoTIFF to; it becomes ``path`` only when complete.

    With ``cog`` the GeoTIFF written is converted to a Cloud Optimized GeoTIFF first,
    and a format GDAL writes by copy only (``write`` ``copy`` in
    :data:`geogan.contract.formats.OUTPUT_FORMATS`) is copied from it.
    The result is re-opened and its first and last blocks read back before it is renamed
    into place; any failure raises :class:`~geogan.errors.OutputError` and leaves
    ``path`` as it was. Open the yielded path with :func:`open_for_write`. A local PNG or
    JPEG keeps what its format cannot hold (georeference, metadata) in ``NAME.aux.xml``,
    renamed into place right after the picture. With ``group``
    (:func:`geogan.fileio.output_group`) the files are renamed with the group's others.
    """
    final = path if isinstance(path, GdalOutput) else Path(path)
    fmt = format_of_driver("COG" if cog else driver)
    # PNG, JPEG: GDAL keeps what the format cannot hold (georeference, metadata) in the
    # copy's NAME.aux.xml; on the local disk it follows the picture onto its name
    aux: list[Path] = []
    try:
        with atomic_output(final, overwrite=overwrite,
                           verify=lambda tmp: verify_raster(tmp, final), group=group) as tmp:
            if fmt.write == "create":
                yield tmp
                return
            # beside the temporary: a /vsi... output's is local
            part = temp_path(tmp if isinstance(final, GdalOutput) else final,
                             suffix=".part.tif")
            try:
                yield part
                try:
                    with gdal_errors(final):
                        if cog:
                            convert_to_cog(part, tmp, compress, creation_options)
                        else:  # PNG, JPEG...: GDAL writes them by copy only
                            from rasterio.shutil import copy as rio_copy

                            rio_copy(part, tmp, driver=driver,
                                     **creation_kwargs(creation_options))
                except RasterioIOError as exc:
                    raise write_error(final, exc.__cause__ or exc) from exc
                if isinstance(final, Path) and aux_path(tmp).is_file():
                    # copied, not moved: the check of the picture before its rename reads it
                    aux.extend((temp_path(aux_path(final), suffix=".xml"), aux_path(tmp)))
                    shutil.copyfile(aux_path(tmp), aux[0])
            finally:
                part.unlink(missing_ok=True)
        if isinstance(final, Path) and aux:
            _place_aux(aux, final, group)
        elif isinstance(final, Path) and driver != "GTiff":
            stale = aux_path(final)  # an older output's
            if group is None:
                stale.unlink(missing_ok=True)
            else:
                group.after_commit(lambda: stale.unlink(missing_ok=True))
    finally:
        for leftover in aux:
            leftover.unlink(missing_ok=True)


def _place_aux(aux: list[Path], final: Path, group: OutputGroup | None) -> None:
    """Rename the picture's sidecar ``aux[0]`` onto ``NAME.aux.xml`` (with ``group``: when
    the group commits, which then owns the temporary)."""
    if group is not None:
        group.add(aux.pop(0), aux_path(final))
        return
    try:
        os.replace(aux[0], aux_path(final))
    except OSError as exc:
        raise write_error(aux_path(final), exc) from exc


def aux_path(path: Path) -> Path:
    """GDAL's sidecar of ``path`` for what its format cannot hold: ``NAME.aux.xml``."""
    return path.with_name(path.name + ".aux.xml")


@contextlib.contextmanager
def open_for_write(path: Path, profile: dict[str, Any], final: Path | None = None) -> Iterator[Any]:
    """``rasterio.open(path, "w", **profile)`` whose failures (at write or close) raise.

    GDAL errors signalled while writing or closing, and ``OSError``, become an
    :class:`~geogan.errors.OutputError` that names ``final`` (the user's file name).
    """
    name = final or path
    try:
        with gdal_errors(name), rasterio.open(path, "w", **profile) as dst:
            yield dst
    except RasterioIOError as exc:
        raise write_error(name, exc.__cause__ or exc) from exc
    except OSError as exc:
        raise write_error(name, exc) from exc
