"""``--at-model-resolution``: translate at the ground resolution the model learned.

A model trained on 5 m pixels, given a 1 m raster, sees every field and roof five
times larger than anything it learned. With this option the input is read through a
warped view (:class:`rasterio.vrt.WarpedVRT`, same CRS and extent, the model's pixel
size: ``average`` when that is coarser, ``bilinear`` when finer) into a temporary
GeoTIFF, translated there as any raster is, and the result is resampled back onto the
input's exact grid (``bilinear`` when enlarging, ``average`` when reducing). The output
keeps the input's CRS, transform, size and validity (nodata or mask, taken from the
input at full resolution) as every output does, and records both resolutions in its
provenance (:mod:`geogan.provenance`).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from geogan.checkpoint import LoadedGenerator
from geogan.errors import InputError
from geogan.ground import dataset_resolution, format_gsd
from geogan.normstats import NormStats
from geogan.progress import CancelCheck, ProgressCallback, check_cancel
from geogan.translate.config import PICTURE_DRIVERS, TranslateConfig
from geogan.translate.lineage import model_gsd

log = logging.getLogger(__name__)

#: Ratios of the model's GSD to the input's this close to 1 need no resampling.
SAME_RESOLUTION = 0.01
#: Rows written back at a time.
ROWS = 256


@dataclasses.dataclass(frozen=True)
class ModelGrid:
    """The input's extent on the model's pixel size: transform, width, height, factor."""

    transform: Any
    width: int
    height: int
    factor: float  # model GSD / input GSD (> 1: the model's pixels are larger)
    input_gsd: float
    model_gsd: float


def model_grid(src: Any, generator: LoadedGenerator, name: str) -> ModelGrid | None:
    """The grid to translate ``src`` on; None when it is already at the model's resolution."""
    from rasterio.transform import Affine

    learned = model_gsd(generator)
    if learned is None:
        raise InputError(f"`at_model_resolution`: the checkpoint does not record the ground "
                         f"resolution its model learned (it was written before geogan recorded "
                         "it); translate without `at_model_resolution`, or resample "
                         f"{name} yourself (gdalwarp -tr)")
    here = dataset_resolution(src)
    if here is None:
        raise InputError(f"`at_model_resolution`: {name} has no CRS, so its ground resolution "
                         "is unknown; give it a georeference or translate without "
                         "`at_model_resolution`")
    factor = learned / here
    if abs(factor - 1.0) <= SAME_RESOLUTION:
        log.info("%s is already at the model's %s per pixel", name, format_gsd(learned))
        return None
    width = max(1, round(src.width / factor))
    height = max(1, round(src.height / factor))
    transform = src.transform @ Affine.scale(src.width / width, src.height / height)
    return ModelGrid(transform, width, height, factor, here, learned)


def translate_at_model_resolution(translate: Callable[..., Any], generator: LoadedGenerator,
                                  input_path: Any, output_path: Any,
                                  config: TranslateConfig,
                                  progress: ProgressCallback | None,
                                  cancel: CancelCheck | None,
                                  stats: NormStats | None) -> Path | None:
    """Translate ``input_path`` at the model's resolution into ``output_path``, with
    ``translate`` (:func:`geogan.translate.translate_raster`) on the resampled input.

    Returns None when the input is already at the model's resolution (the caller
    translates it as usual).
    """
    from geogan.colortable import palette_bands
    from geogan.fileio import check_output_file
    from geogan.translate.compat import open_input

    with open_input(input_path) as src:
        grid = model_grid(src, generator, input_path.name)
        full_mpx = src.width * src.height / 1e6
        paletted = bool(palette_bands(src))
    if grid is None:
        return None
    if paletted:
        raise InputError(f"{input_path} is a palette (colour table) raster, which "
                         "`at_model_resolution` does not resample; drop `at_model_resolution` "
                         f"or expand it first: gdal_translate -expand rgb {input_path.name} "
                         "expanded.tif")
    if not config.skip_existing:
        check_output_file(output_path, config.overwrite)
    log.info("%s: %s pixels, translated at the model's %s (%d x %d px) and resampled back",
             input_path, format_gsd(grid.input_gsd), format_gsd(grid.model_gsd), grid.width,
             grid.height)
    folder = Path(tempfile.mkdtemp(prefix=".geogan-resolution-"))
    try:
        coarse_in = folder / (Path(input_path.name).stem + ".tif")
        coarse_out = folder / "translated.tif"
        _warp_to(input_path, coarse_in, grid)
        check_cancel(cancel, f"translation of {input_path.name}")
        inner = dataclasses.replace(config, at_model_resolution=False, overwrite=False,
                                    skip_existing=False, cog=False, compress="zstd",
                                    creation_options=(), stac=False)

        def scaled(done: float, total: float, **info: Any) -> None:
            if progress is not None:
                progress(done / total * full_mpx if total else 0.0, full_mpx, **info)

        translate(generator, coarse_in, coarse_out, inner, progress=scaled,
                  cancel=cancel, stats=stats)
        check_cancel(cancel, f"translation of {input_path.name}")
        _resample_back(generator, input_path, coarse_out, output_path, config, grid)
        log.info("translated %s -> %s at the model's %s per pixel", input_path, output_path,
                 format_gsd(grid.model_gsd))
        if config.save_stats:
            from geogan.normstats import load_stats, stats_path_for

            saved = stats_path_for(coarse_out)
            if saved.is_file():
                load_stats(saved).save(stats_path_for(output_path), overwrite=config.overwrite)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return output_path


def _warp_to(input_path: Any, target: Path, grid: ModelGrid) -> None:
    """Write ``input_path`` resampled onto ``grid`` (same CRS and extent) as a GeoTIFF."""
    import rasterio.shutil
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    from geogan.rasterio_meta import alpha_band, has_mask
    from geogan.translate.compat import open_input

    resampling = Resampling.average if grid.factor > 1 else Resampling.bilinear
    with open_input(input_path) as src:
        add_alpha = src.nodata is None and alpha_band(src) is None and has_mask(src)
        with WarpedVRT(src, crs=src.crs, transform=grid.transform, width=grid.width,
                       height=grid.height, resampling=resampling, add_alpha=add_alpha) as vrt:
            rasterio.shutil.copy(vrt, str(target), driver="GTiff", tiled=True,
                                 compress="zstd", bigtiff="IF_SAFER")


def _resample_back(generator: LoadedGenerator, input_path: Any, coarse: Path, output_path: Any,
                   config: TranslateConfig, grid: ModelGrid) -> None:
    """Resample the translated ``coarse`` onto the input's grid and write ``output_path``."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    from geogan.provenance import file_facts, read_provenance, utc_now, with_provenance
    from geogan.rasterio_meta import data_bands, has_mask, read_meta
    from geogan.sink import atomic_raster, check_creation_options, num_threads, output_profile
    from geogan.translate.compat import open_input, select_input_bands

    driver = PICTURE_DRIVERS.get(output_path.suffix.lower(), "GTiff")
    back = Resampling.bilinear if grid.factor > 1 else Resampling.average
    with open_input(input_path) as src, rasterio.open(coarse) as co:
        indexes = select_input_bands(src.count, src.dtypes, input_path, generator,
                                     config.bands, data_bands(src))
        masked = has_mask(src, indexes)
        size, modified = file_facts(input_path)
        prov = read_provenance(co)
        assert prov is not None  # translate_raster wrote it
        prov = dataclasses.replace(
            prov, input=input_path.name, input_size=size, input_modified=modified,
            input_synthetic=read_provenance(src) is not None,
            input_gsd_m=round(grid.input_gsd, 4), at_model_resolution=True, created=utc_now())
        meta = with_provenance(read_meta(co), prov)
        profile = output_profile(dict(src.profile), count=co.count, dtype=co.dtypes[0],
                                 nodata=co.nodata, compress=config.compress, meta=meta,
                                 creation_options=config.creation_options
                                 if driver == "GTiff" and not config.cog else ())
        check_creation_options(profile, config.creation_options,
                               "COG" if config.cog else driver)
        profile["num_threads"] = num_threads(config.threads)
        with WarpedVRT(co, crs=src.crs, transform=src.transform, width=src.width,
                       height=src.height, resampling=back) as fine, \
                atomic_raster(output_path, overwrite=config.overwrite, cog=config.cog,
                              compress=config.compress, driver=driver,
                              creation_options=config.creation_options) as target:
            _write_rows(src, fine, indexes, masked, target, output_path, profile, meta)


def _write_rows(src: Any, fine: Any, indexes: list[int], masked: bool, target: Path,
                final: Any, profile: dict[str, Any], meta: Any) -> None:
    """Write ``fine`` (the translation on the input's grid) with the input's validity."""
    from rasterio.windows import Window

    from geogan.rasterio_meta import read_valid, write_meta
    from geogan.sink import open_for_write
    from geogan.translate.nodata import apply_nodata

    out_nodata = profile.get("nodata")
    with open_for_write(target, profile, final) as dst:
        write_meta(dst, meta)
        for row in range(0, src.height, ROWS):
            window = Window(0, row, src.width, min(ROWS, src.height - row))
            data = fine.read(window=window)
            if src.nodata is not None or masked:
                valid = read_valid(src, indexes, window, src.read(indexes, window=window),
                                   src.nodata, masked)
                data = apply_nodata(data, valid, out_nodata)
                if out_nodata is None:
                    dst.write_mask(np.where(valid, 255, 0).astype(np.uint8), window=window)
            dst.write(data, window=window)

