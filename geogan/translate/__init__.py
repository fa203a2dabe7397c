"""Translate whole rasters with a trained generator, window by window, writing as it goes.

The package follows the pipeline: :mod:`~geogan.translate.config` (the options),
:mod:`~geogan.translate.planning` (which inputs go to which outputs, on which rank),
:mod:`~geogan.translate.compat` (does a raster suit the checkpoint; the output's band
meaning), :mod:`~geogan.translate.reading` (each input checked once: what translating it
needs), :mod:`~geogan.translate.resume` (``skip_existing`` with a confidence raster),
:mod:`~geogan.translate.subset` (the part of an input translated),
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

import logging
import os
import time
from collections.abc import Iterable
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
    check_band_names,
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
from geogan.translate.lineage import translation_provenance
from geogan.translate.nodata import output_nodata
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
from geogan.translate.reading import CheckedInput, read_input, translation_profile
from geogan.translate.resume import check_kept_output
from geogan.translate.runtime import (
    prepare_module,
    resolve_batch_size,
    resolve_device,
    resolve_precision,
    torch_threads,
)
from geogan.translate.stacks import stacked_files
from geogan.translate.stats import batch_stats, raster_stats
from geogan.translate.subset import subset_view

if TYPE_CHECKING:
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
    alone (and still returned), so an interrupted batch can be resumed; one that lacks
    its confidence raster (``config.confidence``) gets just that
    (:mod:`~geogan.translate.resume`). All
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
    todo, kept = files_to_translate(mine, config)
    if share.enabled or share.is_array:
        log.info("%s: %d of %d file(s), %d to translate", share.describe(), len(mine),
                 len(files), len(todo))
    if todo:
        check_cancel(cancel, "translation")
        with torch_threads(config.threads):
            _translate_todo(checkpoint, files, todo, kept, config, progress, cancel, direction)
    if config.stac:
        from geogan.stac import write_records

        if folder is not None and share.enabled:
            log.info("%s writes STAC Items only: a Collection would need every task's "
                     "outputs", share.describe())
        write_records(mine, [dst for _, dst in todo if dst not in kept], checkpoint,
                      config.overwrite, None if share.enabled else folder,
                      refreshed=list(kept), confidence=config.confidence)
    return [dst for _, dst in mine]


def _translate_todo(checkpoint: str | os.PathLike[str], files: list[Path],
                    todo: list[tuple[Path, Path]], kept: dict[Path, list[str]],
                    config: TranslateConfig, progress: ProgressCallback | None,
                    cancel: CancelCheck | None, direction: str) -> None:
    """Translate ``todo``; ``kept`` outputs get only the side rasters they lack.

    Every check runs once: those of the options and checkpoint here, those of each input
    (:func:`~geogan.translate.reading.read_input`) for all inputs before the first starts.
    """
    device = resolve_device(config.device)
    generator = load_generator(checkpoint, direction, device)
    check_tile(generator, config.tile)
    check_band_names(generator, config.band_names)
    checked = [read_input(src, generator, config) for src, _ in todo]
    for (src, dst), found in zip(todo, checked, strict=True):
        if dst in kept:
            check_kept_output(dst, src, found, generator, "confidence raster")
    for _, dst in todo:  # the classes' style and names beside a paletted output
        if dst in kept:
            continue
        palette = output_palette(generator, config, PICTURE_DRIVERS.get(
            Path(str(dst)).suffix.lower(), "GTiff"))
        for extra in palette_sidecars(dst, palette):
            check_palette_sidecar(extra, config.overwrite)
    shared = batch_stats(generator, files, config, device, cancel,
                         {src: found.indexes for (src, _), found in zip(todo, checked,
                                                                       strict=True)})
    total = sum(found.width * found.height for found in checked) / 1e6
    done = 0.0
    start = time.perf_counter()
    for i, ((src, dst), found) in enumerate(zip(todo, checked, strict=True)):
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

        _translate_one(generator, src, dst, config, file_progress, cancel, stats=shared,
                       device=device, checked=found, only=kept.get(dst))
        done += found.width * found.height / 1e6


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
    from geogan.rasterio_io import check_outputs_not_read

    config = config or TranslateConfig()
    input_path, output_path = as_input(input_path), as_output(output_path)
    check_cancel(cancel, f"translation of {input_path.name}")
    check_tile(generator, config.tile)
    check_band_names(generator, config.band_names)
    check_outputs_not_read([output_path], [input_path])
    return _translate_one(generator, input_path, output_path, config, progress, cancel,
                          stats=stats, device=resolve_device(config.device))


def _translate_one(generator: LoadedGenerator, input_path: Path, output_path: Path,
                   config: TranslateConfig, progress: ProgressCallback | None = None,
                   cancel: CancelCheck | None = None, *, stats: NormStats | None,
                   device: str, checked: CheckedInput | None = None,
                   only: list[str] | None = None) -> Path:
    """:func:`translate_raster` once the options and checkpoint are checked: on ``device``,
    with ``input_path`` already checked as ``checked`` (None: checked here). With ``only``
    (names of side rasters) the output is kept and only those rasters are written."""
    from geogan.limits import check_read_size
    from geogan.rasterio_io import gdal_env
    from geogan.sink import translation_outputs

    what = f"translation of {input_path.name}"
    if config.at_model_resolution:
        import functools

        from geogan.translate.resolution import translate_at_model_resolution

        done = translate_at_model_resolution(functools.partial(_translate_one, device=device),
                                             generator, input_path, output_path, config,
                                             progress, cancel, stats)
        if done is not None:
            return done
    with gdal_env(GDAL_CACHEMAX=GDAL_CACHE_MB):
        src = checked or read_input(input_path, generator, config)
        config = fit_tile(config, src.width, src.height,
                          int(getattr(generator.module, "size_multiple", 1)))
        check_read_size(config.tile, config.tile, len(src.indexes),
                        f"a `tile` window of {input_path}", "pass a smaller `tile`")
        driver = PICTURE_DRIVERS.get(output_path.suffix.lower(), "GTiff")
        profile = translation_profile(src, output_path, driver, generator, config)
        palette = None if only else output_palette(generator, config, driver)
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
            sides = _sides(config, confidence, only)
            check_free_space(output_path, job.width * job.height * _bytes_per_pixel(
                profile, generator, sides, only is None), certain=False)
            start = time.perf_counter()
            if src.profile.get("crs") is None:
                log.warning("%s has no georeference: %s has none either", input_path,
                            output_path)
            with translation_outputs(output_path, profile, meta, driver, config, sides,
                                     main=only is None,
                                     **palette_outputs(output_path, palette)) as sinks:
                job.run(paletted_sinks(sinks, palette))
                check_cancel(cancel, what)
                if config.save_stats and norm_stats is not None and only is None:
                    norm_stats.save(stats_path_for(output_path), overwrite=config.overwrite)
            if only is None:
                remove_stale_sidecars(output_path, palette, config.overwrite)
        if src.nodata is not None and job.valid_pixels == 0:
            log.warning("%s holds only nodata pixels: %s is all nodata", input_path,
                        output_path)
    elapsed = time.perf_counter() - start
    mpx = profile["width"] * profile["height"] / 1e6
    log.info("translated %s -> %s: %.1f Mpx in %.1f s (%.2f Mpx/s)", input_path, output_path,
             mpx, elapsed, mpx / elapsed if elapsed else 0.0)
    return output_path


def _bytes_per_pixel(profile: dict[str, Any], generator: LoadedGenerator, sides: list[Any],
                     main: bool) -> int:
    """Bytes a pixel of the output (when ``main``) takes, for the free-space check."""
    if main:
        return generator.out_bands * np.dtype(profile["dtype"]).itemsize
    return sum(side.count * np.dtype(side.dtype).itemsize for side in sides)


def _confidence_setup(generator: LoadedGenerator, source: Path, src: CheckedInput,
                      norm_stats: NormStats | None, config: TranslateConfig,
                      device: str) -> ConfidenceSetup | None:
    """With ``config.confidence``: the networks and measure of the confidence raster."""
    if not config.confidence:
        return None
    from geogan.translate.confidence import prepare_confidence

    with open_input(source) as ds:
        return prepare_confidence(generator, ds, src.indexes, src.nodata, norm_stats, device)


def _sides(config: TranslateConfig, confidence: ConfidenceSetup | None,
           only: list[str] | None = None) -> list[Any]:
    """The rasters written beside the output (:mod:`geogan.sink.side`), those named in
    ``only`` when given."""
    from geogan.sink import side_rasters
    from geogan.translate.confidence import with_measure

    sides = with_measure(side_rasters(config), confidence)
    return sides if only is None else [side for side in sides if side.name in only]
