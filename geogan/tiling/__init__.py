"""Cut georeferenced rasters into chips (GeoTIFFs) plus an index of their footprints.

:func:`tile_rasters` is the whole job behind ``geogan tile``; the QGIS plugin calls
it directly with its own progress and cancel callbacks. Each chip is a ``size x
size`` GeoTIFF whose transform is the window transform of the source grid, with
the source's CRS, dtype and nodata, named ``<source stem>__c<col offset>_r<row
offset>.tif`` (offsets in pixels of the tiling grid, zero-padded to six digits; the stem
without leading dots, so that no chip is a hidden file).
A palette (colour-table) band gives chips of its colour indices with its colour
table and category names (:mod:`geogan.colortable`), which training reads as colours.
Chips are placed as :mod:`geogan.grid` describes: edge chips are shifted inward,
and only a raster smaller than one chip gives padded chips (filled with nodata).

Rasters can be read through a warped view (``crs``/``res`` or ``align_to``) so that
two domains end up on one CRS and pixel grid, and ``pair`` writes co-registered
chips ``OUTDIR/A/<name>`` and ``OUTDIR/B/<name>`` (same names) for pix2pix, with B
resampled onto A's grid (or read as is when it already shares A's pixel grid).
``OUTDIR/index.gpkg`` has one row per chip (layer ``chips``): footprint polygon in
the grid's CRS, source path, offsets, size and nodata fraction.

The output folder is built beside its final place and renamed into it only when
complete, so a failure or a cancel leaves nothing behind; one job at a time writes it
(a second one over the same folder is refused).

The steps, one module each: :mod:`~geogan.tiling.config` (options and result),
:mod:`~geogan.tiling.views` (sources on the tiling grid, warps, pairs),
:mod:`~geogan.tiling.aoi`, :mod:`~geogan.tiling.filters` (which chips are kept),
:mod:`~geogan.tiling.chips` (chip files and the index) and :mod:`~geogan.tiling.fastchips`
(uncompressed chips written from a template GDAL made, the same bytes); this module runs
the job.
File and tag names are :mod:`geogan.contract.names`.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from geogan.contract.names import (
    CHIP_NAME_RE,
    INDEX_NAME,
    PAIR_DIRS,
    chip_name,
    chip_stem,
    part_name,
)
from geogan.errors import InputError, OutputError
from geogan.fileio import atomic_directory, check_free_space, check_replaceable, write_error
from geogan.grid import ChipWindow
from geogan.progress import CancelCheck, ProgressCallback, check_cancel
from geogan.rasterio_io import files_read, gdal_env
from geogan.shards import Share, task_share
from geogan.tiling.aoi import aoi_area, apply_aoi, read_aoi
from geogan.tiling.chips import (
    ChipWriter,
    Records,
    chip_meta,
    chip_profile,
    chips_bytes,
    valid_tags,
)
from geogan.tiling.config import CHIP_FOLDER, RESAMPLING, TileConfig, TileResult
from geogan.tiling.fastchips import ChipTemplate, submit_chip
from geogan.tiling.filters import nodata_fraction, rejection
from geogan.tiling.views import Plan, View, open_view, pair_view, plan_input, window_bounds

__all__ = [
    "CHIP_FOLDER", "RESAMPLING", "TileConfig", "TileResult", "aoi_area", "nodata_fraction",
    "open_view", "pair_view", "read_aoi", "rejection", "tile_rasters",
]

log = logging.getLogger(__name__)


#: Bytes read from a source in one call (a run of chips along a row).
_READ_BUDGET = 32 * 2**20
#: GDAL block cache while tiling, in MB: enough for one row of source blocks.
_GDAL_CACHE_MB = 64


def tile_rasters(inputs: Sequence[str | Path], outdir: str | Path, config: TileConfig,
                 progress: ProgressCallback | None = None,
                 cancel: CancelCheck | None = None) -> TileResult:
    """Cut ``inputs`` into chips under ``outdir`` and write ``outdir/index.gpkg``.

    Every input is validated (readable, georeferenced, bands in range) before
    anything is written. ``progress(done, total, kept=..., skipped=...)`` is called
    as chips are processed; ``cancel()`` returning true stops the job with
    :class:`~geogan.errors.Cancelled`. Raises :class:`InputError` (and subclasses)
    for unusable inputs or when no chip passes the filters, :class:`OutputError`
    when ``outdir`` exists and is not empty without ``config.overwrite``.

    As a job-array task (``config.shard``, or an engine's array index, see
    :mod:`geogan.shards`) it tiles the inputs whose file name is its own into
    ``outdir/part-I-of-N`` (a chip folder of its own), and a retried task leaves a
    part that is complete alone.
    """
    from geogan.inputs import as_input

    paths = [as_input(p) for p in inputs]
    outdir = Path(outdir)
    if not paths:
        raise InputError("no input raster given; pass at least one INPUT")
    _check_distinct_stems(paths)
    share = task_share(config.shard)
    if share.enabled or share.is_array:
        return _tile_share(paths, outdir, config, share, progress, cancel)
    return _tile_all(paths, outdir, config, progress, cancel)


def _tile_share(paths: list[Path], outdir: Path, config: TileConfig, share: Share,
                progress: ProgressCallback | None, cancel: CancelCheck | None) -> TileResult:
    """A job-array task's share of the inputs into ``outdir/part-I-of-N``; a part that an
    earlier try completed is left alone (unless ``config.overwrite``)."""
    part = outdir / part_name(share.index, share.count)
    mine = share.pick(paths, lambda p: p.name)
    log.info("%s: %d of %d raster(s) into %s", share.describe(), len(mine), len(paths), part)
    if not mine or (not config.overwrite and (part / INDEX_NAME).is_file()):
        chips = sum(1 for _ in _chip_files(part)) if mine else 0
        if mine:
            log.info("%s is complete (%d chips) from an earlier try; left alone", part, chips)
        return TileResult(outdir=part, index=part / INDEX_NAME, chips=chips, candidates=chips,
                          skipped_nodata=0, skipped_std=0, skipped_aoi=0,
                          paired=config.pair is not None, sources=tuple(mine),
                          existing=bool(mine))
    return _tile_all(mine, part, config, progress, cancel)


def _chip_files(folder: Path) -> Iterator[Path]:
    """The chips in a chip folder (under A/ only for a paired one)."""
    top = folder / PAIR_DIRS[0] if (folder / PAIR_DIRS[0]).is_dir() else folder
    return (p for p in top.iterdir() if CHIP_NAME_RE.match(p.name))


def _tile_all(paths: list[Path], outdir: Path, config: TileConfig,
              progress: ProgressCallback | None, cancel: CancelCheck | None) -> TileResult:
    """Tile every one of ``paths`` into ``outdir`` (see :func:`tile_rasters`)."""
    _check_output_dir(outdir, config, paths)

    with contextlib.ExitStack() as stack:
        stack.enter_context(gdal_env(GDAL_CACHEMAX=_GDAL_CACHE_MB))
        plans = [plan_input(path, config, stack) for path in paths]
        skipped_aoi = 0
        if config.aoi is not None:
            skipped_aoi = apply_aoi(config.aoi, plans)
        total = sum(len(p.windows) for p in plans)
        log.info("tiling %d raster(s) into %d candidate chips of %d px", len(plans), total,
                 config.size)

        inputs_read = _all_inputs(config, paths, plans)
        check_replaceable(outdir, CHIP_FOLDER, config.overwrite, inputs_read)
        check_free_space(outdir, chips_bytes(plans, config),
                         certain=config.compress == "none")
        _import_in_background("pyogrio")  # the index writer (and geopandas) while chips are cut
        with atomic_directory(outdir, CHIP_FOLDER, overwrite=config.overwrite,
                              inputs=inputs_read) as tmp:
            stats = _Stats(total=total, progress=progress)
            records = Records()
            try:
                with ChipWriter(config.threads, backlog_bytes=_READ_BUDGET) as writer:
                    for plan in plans:
                        _tile_one(plan, tmp, config, writer, records, stats, cancel)
            except OutputError as exc:  # name the user's folder, not the hidden temporary
                raise OutputError(str(exc).replace(str(tmp), str(outdir))) from exc
            if stats.kept == 0:
                raise InputError(_nothing_kept_message(paths, config, stats, plans))
            index = tmp / INDEX_NAME
            try:
                records.write(index)
            except Exception as exc:  # pyogrio/fiona raise their own errors for a full disk
                raise write_error(outdir / INDEX_NAME, exc) from exc
            stats.report(final=True)

    log.info("wrote %d chips to %s (%d skipped for nodata, %d for low std, %d outside the AOI)",
             stats.kept, outdir, stats.skipped_nodata, stats.skipped_std, skipped_aoi)
    return TileResult(outdir=outdir, index=outdir / INDEX_NAME, chips=stats.kept,
                      candidates=total, skipped_nodata=stats.skipped_nodata,
                      skipped_std=stats.skipped_std, skipped_aoi=skipped_aoi,
                      paired=config.pair is not None, sources=tuple(paths))


def _import_in_background(module: str) -> None:
    """Start importing ``module`` in a thread: pyogrio and geopandas (the index writer) take a
    good part of a second, which then overlaps the chip reads instead of following them."""
    if module in sys.modules:
        return

    def run() -> None:
        with contextlib.suppress(Exception):  # an import error is raised where it is used
            importlib.import_module(module)

    threading.Thread(target=run, name="geogan-import", daemon=True).start()


@dataclass
class _Stats:
    total: int
    progress: ProgressCallback | None
    done: int = 0
    kept: int = 0
    skipped_nodata: int = 0
    skipped_std: int = 0
    _every: int = 1

    def __post_init__(self) -> None:
        self._every = max(1, self.total // 200)

    def step(self) -> None:
        self.done += 1
        if self.done % self._every == 0:
            self.report()

    def report(self, final: bool = False) -> None:
        if self.progress is not None and (final or self.done < self.total):
            self.progress(self.done, self.total, kept=self.kept,
                          skipped=self.skipped_nodata + self.skipped_std)


def _tile_one(plan: Plan, outdir: Path, config: TileConfig, writer: ChipWriter,
              records: Records, stats: _Stats, cancel: CancelCheck | None) -> None:
    """Cut one input (and its pair): read runs of chips, filter, hand chips to the writer."""
    views = [plan.view] if plan.pair is None else [plan.view, plan.pair]
    dirs = [outdir] if plan.pair is None else [outdir / d for d in PAIR_DIRS]
    for d in dirs:
        d.mkdir(exist_ok=True)
    profiles = [chip_profile(v, config.size, config.compress, config.creation_options)
                for v in views]
    grid_transform = plan.view.transform
    grid = ChipWindow(0, 0, plan.view.width, plan.view.height)
    templates = [ChipTemplate(p, chip_meta(v)) for p, v in zip(profiles, views, strict=True)]
    columns = records.columns(plan.view.crs)
    stem, size = plan.view.path.stem, config.size

    for union, group in _read_groups(plan.windows, size, views):
        check_cancel(cancel, "tiling")
        data = [v.read(union) for v in views]  # each (bands, size, union width)
        # validity is per pixel: found for the whole run at once, then cut like the pixels
        valid_runs = [v.valid(union, d) for v, d in zip(views, data, strict=True)]
        for win in group:
            check_cancel(cancel, "tiling")
            c = win.col_off - union.col_off
            chips = [d[:, :, c:c + size] for d in data]
            valids = [ok[:, c:c + size] for ok in valid_runs]
            fractions = [nodata_fraction(ok) for ok in valids]
            colours = [v.colours(ch) for v, ch in zip(views, chips, strict=True)]
            rejected = rejection(colours, valids, config.max_nodata, config.min_std)
            if rejected == "nodata":
                stats.skipped_nodata += 1
            elif rejected == "std":
                stats.skipped_std += 1
            else:
                name = chip_name(stem, win.col_off, win.row_off)
                transform = window_transform(Window(*win), grid_transform)
                tags = valid_tags(win, grid)
                for folder, chip, ok, view, tpl in zip(dirs, chips, valids, views, templates,
                                                       strict=True):
                    submit_chip(writer, tpl, folder / name, chip, transform, tags,
                                ok if view.masked else None)
                row: dict[str, Any] = dict(chip=name, source=str(views[0].path),
                                           col_off=win.col_off, row_off=win.row_off,
                                           width=size, height=size, nodata_frac=fractions[0])
                if len(views) == 2:
                    row.update(source_b=str(views[1].path), nodata_frac_b=fractions[1])
                records.add(columns, window_bounds(grid_transform, win), **row)
                stats.kept += 1
            stats.step()


def _read_groups(windows: list[ChipWindow], size: int,
                 views: list[View]) -> Iterator[tuple[ChipWindow, list[ChipWindow]]]:
    """Runs of adjacent windows on one row, read together: ``(union window, windows)``.

    A run spans at most ``_READ_BUDGET`` bytes, so memory does not grow with the raster.
    """
    px_bytes = sum(len(v.bands) * np.dtype(v.dtype).itemsize for v in views)
    max_width = max(size, _READ_BUDGET // (px_bytes * size))
    group: list[ChipWindow] = []
    for win in windows:
        if group and (win.row_off != group[0].row_off or win.col_off < group[-1].col_off
                      or win.col_off > group[-1].col_end
                      or win.col_end - group[0].col_off > max_width):
            yield _union(group), group
            group = []
        group.append(win)
    if group:
        yield _union(group), group


def _union(group: list[ChipWindow]) -> ChipWindow:
    first, last = group[0], group[-1]
    return ChipWindow(first.col_off, first.row_off, last.col_end - first.col_off, first.height)


def _check_distinct_stems(paths: list[Path]) -> None:
    seen: dict[str, Path] = {}
    for p in paths:
        stem = chip_stem(p.stem)
        if stem in seen and seen[stem] != p:
            raise InputError(f"{seen[stem]} and {p} have the same name, so their chips would "
                             "collide; rename one of them")
        seen[stem] = p


def _check_output_dir(outdir: Path, config: TileConfig, inputs: list[Path]) -> None:
    """Fail before any work if ``outdir`` cannot be used (atomic_directory checks again)."""
    if outdir.exists() and not outdir.is_dir():
        raise OutputError(f"{outdir} exists and is not a folder; choose another output folder")
    check_replaceable(outdir, CHIP_FOLDER, config.overwrite, _all_inputs(config, inputs))


def _all_inputs(config: TileConfig, inputs: Sequence[Path],
                plans: Sequence[Plan] = ()) -> list[Path]:
    """Every file the job reads: inputs, AOI, --align-to, --pair and the files behind them
    (a VRT's sources, sidecars: :func:`~geogan.rasterio_io.files_read`)."""
    files = [*inputs, *(Path(o) for o in (config.aoi, config.align_to, config.pair)
                        if o is not None)]
    if plans:
        files.extend(f for plan in plans for f in plan.files)
        files.extend(f for o in (config.align_to, config.pair) if o is not None
                     for f in files_read(o))
    return files


def _nothing_kept_message(paths: list[Path], config: TileConfig, stats: _Stats,
                          plans: list[Plan]) -> str:
    names = ", ".join(str(p) for p in paths)
    msg = (f"no chip from {names} was kept: {stats.skipped_nodata} had a nodata fraction over "
           f"`max_nodata` {config.max_nodata:g} and {stats.skipped_std} a std under `min_std` "
           f"{config.min_std:g}; loosen those options")
    if any(p.padded for p in plans):
        msg += (f" (rasters smaller than one {config.size} px chip are padded with nodata: "
                "raise `max_nodata` or pass a smaller `size`)")
    return msg
