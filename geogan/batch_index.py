"""One product from a finished batch: an index of its outputs and a VRT mosaic over them.

:func:`index_outputs` is the job behind ``geogan mosaic --index FOLDER``, run once the
tasks of a batch (a job array, see :mod:`geogan.shards`) have all finished. It writes,
into the output folder:

- ``index.gpkg``, layer ``outputs``: one footprint polygon per raster (in the rasters'
  CRS) with its ``path`` (relative to the folder), ``width`` and ``height``, and a
  field for each ``GEOGAN_*`` tag the rasters carry (their provenance);
- ``mosaic.vrt``: a GDAL VRT over all of them (:mod:`geogan.vrt`), with paths relative
  to the folder, so the folder can be moved or synced and the whole batch still opens
  in QGIS as one layer.

Both are written beside their final names and renamed into place only when complete.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geogan.contract.names import BATCH_INDEX_LAYER, BATCH_INDEX_NAME, BATCH_VRT_NAME
from geogan.errors import InputError, OutputError, first_line
from geogan.fileio import atomic_output, check_output_file, write_error
from geogan.progress import CancelCheck, ProgressCallback, check_cancel
from geogan.vrt import VrtSource, off_grid, read_source, vrt_xml

log = logging.getLogger(__name__)

#: Tags copied into the index: the provenance geogan writes into its outputs.
TAG_PREFIX = "GEOGAN_"
_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class BatchIndex:
    """What :func:`index_outputs` wrote: the index, the VRT and how many rasters they cover."""

    index: Path
    vrt: Path
    rasters: int


def batch_rasters(folder: Path) -> list[Path]:
    """The GeoTIFFs of a batch's output folder (not hidden temporaries), sorted by name."""
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder; give the output folder of the batch")
    found = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.suffix.lower() in _SUFFIXES)
    if not found:
        raise InputError(f"{folder} holds no .tif rasters; give the folder the batch's "
                         "translate tasks wrote (-o)")
    return found


def index_outputs(folder: str | Path, overwrite: bool = False,
                  progress: ProgressCallback | None = None,
                  cancel: CancelCheck | None = None) -> BatchIndex:
    """Write ``folder/index.gpkg`` and ``folder/mosaic.vrt`` over the rasters in ``folder``.

    Raises :class:`InputError` when a raster does not read or the rasters are not on one
    CRS and pixel size (:func:`geogan.vrt.check_same_grid`), :class:`OutputError` when
    either file exists without ``overwrite``. ``progress(done, total)`` counts rasters read.
    """
    import rasterio
    from rasterio.errors import RasterioError

    folder = Path(folder)
    index, vrt = folder / BATCH_INDEX_NAME, folder / BATCH_VRT_NAME
    paths = batch_rasters(folder)
    for target in (index, vrt):
        check_output_file(target, overwrite)
    sources: list[VrtSource] = []
    rows: list[dict[str, Any]] = []
    for i, path in enumerate(paths):
        check_cancel(cancel, "indexing")
        try:
            with rasterio.open(path) as ds:
                source = read_source(path, ds)
                tags = {k: v for k, v in ds.tags().items() if k.startswith(TAG_PREFIX)}
        except RasterioError as exc:
            raise InputError(f"{path} does not read as a raster ({first_line(exc)}); rerun the "
                             "task that writes it, or move it out of the folder") from exc
        sources.append(source)
        rows.append({"path": path.name, "width": source.width, "height": source.height,
                     **tags})
        if progress is not None:
            progress(i + 1, len(paths))
    xml = vrt_xml(sources, vrt)  # checks the grid before anything is written
    moved = off_grid(sources)
    if moved:
        log.warning("%d raster(s) are not on %s's pixel grid (e.g. %s); the VRT resamples them "
                    "(nearest neighbour)", len(moved), paths[0].name, moved[0].name)
    check_cancel(cancel, "indexing")
    with atomic_output(index, overwrite) as tmp:
        _write_index(tmp, index, sources, rows)
    with atomic_output(vrt, overwrite) as tmp:
        tmp.write_text(xml, encoding="utf-8")
    log.info("indexed %d raster(s) of %s: %s and %s", len(paths), folder, index.name, vrt.name)
    return BatchIndex(index=index, vrt=vrt, rasters=len(paths))


def _write_index(tmp: Path, final: Path, sources: list[VrtSource],
                 rows: list[dict[str, Any]]) -> None:
    import geopandas as gpd
    import shapely

    keys = list(dict.fromkeys(k for row in rows for k in row))
    columns = {k: [row.get(k) for row in rows] for k in keys}
    geometry = [shapely.box(*s.bounds) for s in sources]
    crs = sources[0].crs_wkt or None
    frame = gpd.GeoDataFrame(columns, geometry=geometry, crs=crs)
    try:
        frame.to_file(tmp, layer=BATCH_INDEX_LAYER, driver="GPKG")
    except OutputError:
        raise
    except Exception as exc:  # pyogrio raises its own errors for a full disk
        raise write_error(final, exc) from exc
