"""Translate whole rasters with a trained generator, window by window, writing as it goes.

The package follows the pipeline: :mod:`~geogan.translate.config` (the options),
:mod:`~geogan.translate.planning` (which inputs go to which outputs, on which rank),
:mod:`~geogan.translate.compat` (does a raster suit the checkpoint; the output's band
meaning), :mod:`~geogan.translate.subset` (the part of an input translated),
:mod:`~geogan.translate.nodata` (the output's nodata),
:mod:`~geogan.translate.stats` (the normalisation statistics used),
:mod:`~geogan.translate.runtime` (device, precision, module placement and compile),
:mod:`~geogan.translate.engine` (the threaded read / infer / write of one raster) with
:mod:`~geogan.translate.workers` (its thread plumbing),
:mod:`~geogan.translate.stitch` (blending windows into rows),
:mod:`~geogan.translate.strips` (very wide rasters in vertical strips),
:mod:`~geogan.translate.tensors` (raster values to model values and back),
:mod:`~geogan.translate.lineage` (the provenance every output carries, the ground-resolution
warning) and :mod:`~geogan.translate.resolution` (``at_model_resolution``). This module
holds the library entry points, :func:`translate_files` and :func:`translate_raster`.

Outputs keep the input's CRS, transform, size and nodata mask (those of its part
with ``bounds``/``aoi``: :mod:`~geogan.translate.subset`); they have the band count
and dtype of the generator's target domain and are written to a temporary file that
is renamed only when complete. Each says in its metadata that it is synthetic and how it
was made (:mod:`geogan.provenance`); with ``config.stac``, :func:`translate_files` also
writes STAC records (:mod:`geogan.stac`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from geogan.checkpoint import LoadedGenerator, load_generator
from geogan.errors import InputError
from geogan.fileio import check_free_space
from geogan.inputs import as_output
from geogan.normstats import NormStats, stats_path_for
from geogan.progress import CancelCheck, ProgressCallback, check_cancel
from geogan.provenance import with_provenance
from geogan.shards import task_share
from geogan.translate import confidence as _confidence  # noqa: F401  (registers its raster)
from geogan.translate.compat import (
    check_tile,
    fit_tile,
    open_input,
    output_meta,
    select_input_bands,
)
from geogan.translate.config import (
    AUTO_BATCH,
    GDAL_CACHE_MB,
    OUTPUT_SUFFIXES,
    PICTURE_DRIVERS,
    TranslateConfig,
)
from geogan.translate.engine import QUEUE_DEPTH, Job
from geogan.translate.lineage import check_ground, translation_provenance
from geogan.translate.nodata import given_nodata, output_nodata
from geogan.translate.paletted import (
    check_palette_sidecar,
    output_palette,
    palette_outputs,
    palette_sidecars,
    paletted_sinks,
    remove_stale_sidecars,
)
from geogan.translate.planning import (
    expand_inputs,
    files_to_translate,
    map_outputs,
    my_share,
    rank_share,
)
from geogan.translate.runtime import (
    prepare_module,
    resolve_batch_size,
    resolve_device,
    resolve_precision,
    torch_threads,
)
from geogan.translate.stacks import stacked_files
from geogan.translate.stats import batch_stats, raster_stats
from geogan.translate.subset import Subset, inspect_input, plan_view, subset_view

if TYPE_CHECKING:
    from geogan.rasterio_meta import RasterMeta
    from geogan.translate.confidence import ConfidenceSetup

__all__ = [
    "AUTO_BATCH",
    "GDAL_CACHE_MB",
    "OUTPUT_SUFFIXES",
    "PICTURE_DRIVERS",
    "QUEUE_DEPTH",
    "TranslateConfig",
    "check_tile",
    "expand_inputs",
    "fit_tile",
    "map_outputs",
    "output_meta",
    "output_nodata",
    "prepare_module",
    "rank_share",
    "resolve_batch_size",
    "resolve_device",
    "resolve_precision",
    "select_input_bands",
    "translate_files",
    "translate_raster",
]

log = logging.getLogger(__name__)


def translate_files(checkpoint: str | os.PathLike[str],
                    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
                    output: str | os.PathLike[str], config: TranslateConfig | None = None,
                    progress: ProgressCallback | None = None,
                    cancel: CancelCheck | None = None, *, direction: str = "a2b") -> list[Path]:
    """Translate files, folders or globs with a checkpoint; return this rank's output paths.

    ``direction`` picks the checkpoint's generator (``a2b`` or ``b2a``).

    With several inputs ``output`` is a folder (see :func:`map_outputs`). A job-array
    task (``config.shard``, or Slurm's, Kubernetes' or AWS Batch's array index, see
    :mod:`geogan.shards`) translates the inputs whose file name hashes to it and
    leaves complete outputs alone unless ``config.overwrite``. Under torchrun the
    files are shared out round-robin across ranks (RANK, WORLD_SIZE) and each rank
    uses ``cuda:LOCAL_RANK``. Outputs that exist are an
    error unless ``config.overwrite``; with ``config.skip_existing`` they are left
    alone (and still returned), so an interrupted batch can be resumed. All
    outputs are checked before any work starts. ``progress`` gets megapixels done
    of the batch total, with ``file``, ``files`` (``i/n``), ``file_pct``, ``file_eta_s``
    and ``mpx_s`` figures.
    """
    config = config or TranslateConfig()
    if direction not in ("a2b", "b2a"):
        raise InputError(f"unknown `direction` {direction!r}; choose a2b or b2a")
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    inputs = list(inputs)
    files = expand_inputs(inputs)
    outs = map_outputs(files, output)
    files = stacked_files(checkpoint, files, config, direction)  # --stack: as in training
    share = task_share(config.shard)
    mine, config = my_share(list(zip(files, outs, strict=True)), share, config)
    folder = None if len(outs) == 1 and outs[0] == as_output(output) else as_output(output)
    if config.stac:
        from geogan.stac import check_available, check_collection_output

        check_available()
        if folder is not None:
            check_collection_output(folder, config.overwrite)
    todo = files_to_translate(mine, config)
    if share.enabled or share.is_array:
        log.info("%s: %d of %d file(s), %d to translate", share.describe(), len(mine),
                 len(files), len(todo))
    if todo:
        check_cancel(cancel, "translation")
        with torch_threads(config.threads):
            _translate_todo(checkpoint, files, todo, mine, config, progress, cancel, direction)
    if config.stac:
        from geogan.stac import write_records

        if folder is not None and share.enabled:
            log.info("%s writes STAC Items only: a Collection would need every task's "
                     "outputs", share.describe())
        write_records(mine, [dst for _, dst in todo], checkpoint, config.overwrite,
                      None if share.enabled else folder)
    return [dst for _, dst in mine]


def _translate_todo(checkpoint: str | os.PathLike[str], files: list[Path],
                    todo: list[tuple[Path, Path]],
                    mine: list[tuple[Path, Path]], config: TranslateConfig,
                    progress: ProgressCallback | None, cancel: CancelCheck | None,
                    direction: str) -> list[Path]:
    device = resolve_device(config.device)
    generator = load_generator(checkpoint, direction, device)
    check_tile(generator, config.tile)
    sizes = [inspect_input(src, generator, config) for src, _ in todo]
    for _, dst in todo:  # the classes' style and names beside a paletted output
        palette = output_palette(generator, config, PICTURE_DRIVERS.get(
            Path(str(dst)).suffix.lower(), "GTiff"))
        for extra in palette_sidecars(dst, palette):
            check_palette_sidecar(extra, config.overwrite)
    shared = batch_stats(generator, files, config, device, cancel)
    total = sum(sizes) / 1e6
    done = 0.0
    start = time.perf_counter()
    for i, ((src, dst), size) in enumerate(zip(todo, sizes, strict=True)):
        label = f"{i + 1}/{len(todo)}"

        def file_progress(d: float, t: float, _base: float = done, _name: str = src.name,
                          _label: str = label, **info: float | str) -> None:
            if progress is None:
                return
            elapsed = time.perf_counter() - start
            rate = (_base + d) / elapsed if elapsed else 0.0
            figures: dict[str, float | str] = {
                "file": _name, "files": _label,
                "file_pct": round(100.0 * d / t, 1) if t else 0.0,
                "file_eta_s": round((t - d) / rate, 1) if rate else 0.0,
                "mpx_s": rate}
            progress(_base + d, total, **figures)

        translate_raster(generator, src, dst, config, progress=file_progress, cancel=cancel,
                         stats=shared)
        done += size / 1e6
    return [dst for _, dst in mine]


def translate_raster(generator: LoadedGenerator, input_path: str | os.PathLike[str],
                     output_path: str | os.PathLike[str], config: TranslateConfig | None = None,
                     progress: ProgressCallback | None = None,
                     cancel: CancelCheck | None = None, *,
                     stats: NormStats | None = None) -> Path:
    """Translate one raster with a loaded generator; return the output path.

    ``progress(done, total, mpx_s=...)`` is called from the caller's thread in
    megapixels; ``cancel()`` is polled several times a second and between batches
    (raising :class:`geogan.errors.Cancelled`, with nothing left behind).
    With ``config.norm`` other than ``window``, ``stats`` (checked against the
    generator by the caller) are used, else ``config.stats`` is read, else the
    statistics are estimated from this raster first (from its part with
    ``config.bounds``/``config.aoi``, see :mod:`geogan.translate.subset`).
    """
    from geogan.inputs import as_input
    from geogan.limits import check_read_size
    from geogan.rasterio_io import check_outputs_not_read, gdal_env
    from geogan.sink import translation_outputs

    config = config or TranslateConfig()
    input_path, output_path = as_input(input_path), as_output(output_path)
    what = f"translation of {input_path.name}"
    check_cancel(cancel, what)
    check_tile(generator, config.tile)
    check_outputs_not_read([output_path], [input_path])
    device = resolve_device(config.device)
    if config.at_model_resolution:
        from geogan.translate.resolution import translate_at_model_resolution

        done = translate_at_model_resolution(translate_raster, generator, input_path,
                                             output_path, config,
                                             progress, cancel, stats)
        if done is not None:
            return done
    with gdal_env(GDAL_CACHEMAX=GDAL_CACHE_MB):
        src = _read_input(input_path, generator, config)
        config = fit_tile(config, src.width, src.height,
                          int(getattr(generator.module, "size_multiple", 1)))
        check_read_size(config.tile, config.tile, len(src.indexes),
                        f"a `tile` window of {input_path}", "pass a smaller `tile`")
        driver = PICTURE_DRIVERS.get(output_path.suffix.lower(), "GTiff")
        profile = _output_profile(src, output_path, driver, generator, config)
        palette = output_palette(generator, config, driver)
        with subset_view(input_path, src.vrt) as source:
            norm_stats = raster_stats(generator, source, src.indexes, src.profile, config,
                                      device, stats, cancel)
            meta = with_provenance(src.meta, translation_provenance(
                generator, input_path, config, resolve_precision(config.precision, device),
                norm_stats, src.tags, src.gsd_m))
            confidence = _confidence_setup(generator, source, src, norm_stats, config, device)
            check_cancel(cancel, what)
            job = Job(generator, input_path, src.indexes, src.nodata, profile["nodata"],
                      profile, config, device, progress, cancel, meta=meta,
                      masked=src.masked, norm_stats=norm_stats, source=source,
                      region=src.subset, confidence=confidence)
            itemsize = np.dtype(profile["dtype"]).itemsize
            check_free_space(output_path,
                             job.width * job.height * generator.out_bands * itemsize,
                             certain=False)
            start = time.perf_counter()
            if src.profile.get("crs") is None:
                log.warning("%s has no georeference: %s has none either", input_path,
                            output_path)
            with translation_outputs(output_path, profile, meta, driver, config,
                                     _sides(config, confidence),
                                     **palette_outputs(output_path, palette)) as sinks:
                job.run(paletted_sinks(sinks, palette))
                check_cancel(cancel, what)
                if config.save_stats and norm_stats is not None:
                    norm_stats.save(stats_path_for(output_path), overwrite=config.overwrite)
            remove_stale_sidecars(output_path, palette, config.overwrite)
        if src.nodata is not None and job.valid_pixels == 0:
            log.warning("%s holds only nodata pixels: %s is all nodata", input_path,
                        output_path)
    elapsed = time.perf_counter() - start
    mpx = profile["width"] * profile["height"] / 1e6
    log.info("translated %s -> %s: %.1f Mpx in %.1f s (%.2f Mpx/s)", input_path, output_path,
             mpx, elapsed, mpx / elapsed if elapsed else 0.0)
    return output_path


def _confidence_setup(generator: LoadedGenerator, source: Path, src: _Input,
                      norm_stats: NormStats | None, config: TranslateConfig,
                      device: str) -> ConfidenceSetup | None:
    """With ``config.confidence``: the networks and measure of the confidence raster."""
    if not config.confidence:
        return None
    from geogan.translate.confidence import prepare_confidence

    with open_input(source) as ds:
        return prepare_confidence(generator, ds, src.indexes, src.nodata, norm_stats, device)


def _sides(config: TranslateConfig, confidence: ConfidenceSetup | None) -> list[Any]:
    """The rasters written beside the output (:mod:`geogan.sink.side`)."""
    from geogan.sink import side_rasters
    from geogan.translate.confidence import with_measure

    return with_measure(side_rasters(config), confidence)


@dataclass(frozen=True)
class _Input:
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


def _read_input(path: Path, generator: LoadedGenerator, config: TranslateConfig) -> _Input:
    """Open and check ``path``; its bands, nodata, band meaning and the part translated."""
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
        return _Input(indexes, profile, pixels.nodata, has_mask(pixels, indexes), meta, subset,
                      vrt, tags, gsd_m)


def _output_profile(src: _Input, output_path: Path, driver: str, generator: LoadedGenerator,
                    config: TranslateConfig) -> dict[str, Any]:
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
