"""Cut georeferenced rasters into chips (GeoTIFFs) plus an index of their footprints.

:func:`tile_rasters` is the whole job behind ``geogan tile``; the QGIS plugin calls
it directly with its own progress and cancel callbacks. Each chip is a ``size x
size`` GeoTIFF whose transform is the window transform of the source grid, with
the source's CRS, dtype and nodata, named ``<source stem>__c<col offset>_r<row
offset>.tif`` (offsets in pixels of the tiling grid, zero-padded to six digits).
Chips are placed as :mod:`geogan.grid` describes: edge chips are shifted inward,
and only a raster smaller than one chip gives padded chips (filled with nodata).

Rasters can be read through a warped view (``crs``/``res`` or ``align_to``) so that
two domains end up on one CRS and pixel grid, and ``pair`` writes co-registered
chips ``OUTDIR/A/<name>`` and ``OUTDIR/B/<name>`` (same names) for pix2pix, with B
resampled onto A's grid (or read as is when it already shares A's pixel grid).
``OUTDIR/index.gpkg`` has one row per chip (layer ``chips``): footprint polygon in
the grid's CRS, source path, offsets, size and nodata fraction.

The output folder is built beside its final place and renamed into it only when
complete, so a failure or a cancel leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import CRSError, RasterioError
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from geogan.errors import GeoreferenceError, InputError, OutputError, first_line
from geogan.fileio import (
    FolderKind,
    atomic_directory,
    check_free_space,
    check_replaceable,
    gdal_errors,
    write_error,
)
from geogan.formats import COMPRESSIONS
from geogan.grid import ChipWindow, chip_windows, intersection
from geogan.names import (  # noqa: F401  (re-exported)
    CHIP_NAME_RE,
    INDEX_LAYER,
    INDEX_NAME,
    PAIR_DIRS,
    VALID_WINDOW_TAG,
    chip_name,
    parse_chip_name,
)
from geogan.progress import CancelCheck, ProgressCallback, check_cancel
from geogan.rasterio_io import check_readable, gdal_env, open_raster
from geogan.rasterio_meta import (
    RasterMeta,
    check_pixels,
    data_bands,
    has_mask,
    read_meta,
    read_valid,
    write_meta,
)
from geogan.sink import check_creation_options, creation_kwargs, output_profile

log = logging.getLogger(__name__)

#: Resampling methods for warped views (``--crs/--res``, ``--align-to``, ``--pair``).
RESAMPLING: dict[str, Resampling] = {
    "nearest": Resampling.nearest,
    "bilinear": Resampling.bilinear,
    "cubic": Resampling.cubic,
    "cubic_spline": Resampling.cubic_spline,
    "lanczos": Resampling.lanczos,
    "average": Resampling.average,
    "mode": Resampling.mode,
}

#: Chip compressions: ``none`` is fastest to write and to read during training.
CHIP_COMPRESSIONS: tuple[str, ...] = ("none", *COMPRESSIONS)

#: Bytes read from a source in one call (a run of chips along a row).
_READ_BUDGET = 32 * 2**20
#: GDAL block cache while tiling, in MB: enough for one row of source blocks.
_GDAL_CACHE_MB = 64


def _owned_by_chips(rel: PurePosixPath) -> bool:
    """Files geogan writes in a chip folder: the index and chips (also under A/ and B/)."""
    if rel.as_posix() == INDEX_NAME:
        return True
    parts = rel.parts
    if len(parts) == 2 and parts[0] not in PAIR_DIRS:
        return False
    return len(parts) <= 2 and CHIP_NAME_RE.match(rel.name) is not None


#: What ``geogan tile --overwrite`` may replace: a folder with an index and chips only.
CHIP_FOLDER = FolderKind("chip folder", (INDEX_NAME,), _owned_by_chips)


@dataclass(frozen=True)
class TileConfig:
    """What :func:`tile_rasters` does; the fields mirror ``geogan tile``'s options.

    ``bands``/``pair_bands`` are 1-based band numbers (``None``: all bands).
    ``max_nodata`` is the largest nodata fraction a kept chip may have (a pixel is
    nodata when all its selected bands equal the nodata value). ``min_std`` drops
    near-constant chips: a chip is kept when at least one band's standard
    deviation over its valid pixels reaches ``min_std`` (0 keeps all).
    ``crs``/``res`` or ``align_to`` read the inputs through a warped view;
    ``pair`` writes A/B chip pairs with the pair raster resampled onto each
    input's grid. ``threads`` is the number of chip-writing threads (0: write in
    the calling thread).
    """

    size: int = 256
    overlap: int = 0
    bands: tuple[int, ...] | None = None
    aoi: Path | None = None
    max_nodata: float = 0.0
    min_std: float = 0.0
    crs: str | None = None
    res: float | None = None
    align_to: Path | None = None
    pair: Path | None = None
    pair_bands: tuple[int, ...] | None = None
    resampling: str = "bilinear"
    compress: str = "none"
    allow_no_crs: bool = False
    overwrite: bool = False
    threads: int = 1
    #: GDAL creation options for the chips (``--co KEY=VALUE``), applied after geogan's own.
    creation_options: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        # Accept str paths and band lists from callers such as the QGIS plugin.
        for name in ("aoi", "align_to", "pair"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        for name in ("bands", "pair_bands"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(int(b) for b in value))
        if self.size < 1:
            raise InputError(f"--size {self.size} must be a positive number of pixels")
        if not 0 <= self.overlap < self.size:
            raise InputError(f"--overlap {self.overlap} must be at least 0 and smaller than "
                             f"--size {self.size}")
        for opt, bands in (("--bands", self.bands), ("--pair-bands", self.pair_bands)):
            if bands is not None and (not bands or any(b < 1 for b in bands)):
                raise InputError(f"{opt} {_fmt_bands(bands)} must list band numbers from 1, "
                                 "e.g. 1,2,3")
        if not 0.0 <= self.max_nodata <= 1.0:
            raise InputError(f"--max-nodata {self.max_nodata} must be a fraction between 0 and 1")
        if self.min_std < 0 or math.isnan(self.min_std):
            raise InputError(f"--min-std {self.min_std} must be 0 or more")
        if self.res is not None and not self.res > 0:
            raise InputError(f"--res {self.res} must be a positive pixel size in CRS units")
        if self.align_to is not None and (self.crs is not None or self.res is not None):
            raise InputError("--align-to takes the CRS and resolution from its raster; "
                             "do not combine it with --crs/--res")
        if self.pair_bands is not None and self.pair is None:
            raise InputError("--pair-bands needs --pair B.tif")
        if self.resampling not in RESAMPLING:
            raise InputError(f"unknown resampling {self.resampling!r}; choose one of "
                             f"{', '.join(RESAMPLING)}")
        if self.compress not in CHIP_COMPRESSIONS:
            raise InputError(f"unknown compression {self.compress!r}; choose one of "
                             f"{', '.join(CHIP_COMPRESSIONS)}")
        if self.threads < 0:
            raise InputError(f"threads must be 0 or more, got {self.threads}")

    @property
    def warped(self) -> bool:
        """Whether inputs are read through a warped view."""
        return self.crs is not None or self.res is not None or self.align_to is not None


@dataclass(frozen=True)
class TileResult:
    """What :func:`tile_rasters` wrote."""

    outdir: Path
    index: Path
    chips: int
    candidates: int
    skipped_nodata: int
    skipped_std: int
    skipped_aoi: int
    paired: bool = False
    sources: tuple[Path, ...] = field(default_factory=tuple)


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
    """
    from geogan.inputs import as_input

    paths = [as_input(p) for p in inputs]
    outdir = Path(outdir)
    if not paths:
        raise InputError("no input raster given; pass at least one INPUT")
    _check_distinct_stems(paths)
    _check_output_dir(outdir, config, paths)

    with contextlib.ExitStack() as stack:
        stack.enter_context(gdal_env(GDAL_CACHEMAX=_GDAL_CACHE_MB))
        plans = [_plan(path, config, stack) for path in paths]
        skipped_aoi = 0
        if config.aoi is not None:
            skipped_aoi = _apply_aoi(config.aoi, plans)
        total = sum(len(p.windows) for p in plans)
        log.info("tiling %d raster(s) into %d candidate chips of %d px", len(plans), total,
                 config.size)

        inputs_read = _all_inputs(config, paths, plans)
        check_replaceable(outdir, CHIP_FOLDER, config.overwrite, inputs_read)
        check_free_space(outdir, _chips_bytes(plans, config),
                         certain=config.compress == "none")
        with atomic_directory(outdir, CHIP_FOLDER, overwrite=config.overwrite,
                              inputs=inputs_read) as tmp:
            stats = _Stats(total=total, progress=progress)
            records = _Records()
            try:
                with _ChipWriter(config.threads) as writer:
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


# --------------------------------------------------------------------------- views


@dataclass
class _View:
    """A raster as seen on a tiling grid: selected bands, nodata, reads padded with nodata.

    ``dataset`` is the open source or a warped view of it; grid pixel ``(col, row)``
    is dataset pixel ``(col - shift[0], row - shift[1])``. ``coverage`` is the part of
    the grid where the dataset has pixels.
    """

    path: Path
    dataset: Any
    bands: tuple[int, ...]
    nodata: float | None
    dtype: str
    crs: CRS | None
    transform: Any
    width: int
    height: int
    shift: tuple[int, int] = (0, 0)
    #: Band meaning of the selected bands, written onto every chip.
    meta: RasterMeta | None = None
    #: Whether validity comes from a mask (per-dataset mask or alpha), not only nodata.
    masked: bool = False

    def __post_init__(self) -> None:
        self.masked = has_mask(self.dataset, self.bands)

    @property
    def coverage(self) -> ChipWindow:
        ds = self.dataset
        return ChipWindow(self.shift[0], self.shift[1], ds.width, ds.height)

    def read(self, win: ChipWindow) -> np.ndarray:
        """Pixels of grid window ``win`` as ``(bands, height, width)``, nodata outside."""
        part = intersection(win, self.coverage)
        if part == win:
            return self._read(part)
        fill = self.nodata if self.nodata is not None else 0
        out = np.full((len(self.bands), win.height, win.width), fill, dtype=self.dtype)
        if part is not None:
            c, r = part.col_off - win.col_off, part.row_off - win.row_off
            out[:, r:r + part.height, c:c + part.width] = self._read(part)
        return out

    def valid(self, win: ChipWindow, data: np.ndarray) -> np.ndarray:
        """``(height, width)`` booleans: pixels of ``data`` (read for ``win``) holding data.

        GDAL's rule (:func:`geogan.rasterio_meta.read_valid`); outside the raster
        nothing is valid.
        """
        part = intersection(win, self.coverage)
        if part == win:
            return self._valid(part, data)
        valid = np.zeros((win.height, win.width), dtype=bool)
        if part is not None:
            c, r = part.col_off - win.col_off, part.row_off - win.row_off
            inner = data[:, r:r + part.height, c:c + part.width]
            valid[r:r + part.height, c:c + part.width] = self._valid(part, inner)
        return valid

    def _valid(self, part: ChipWindow, data: np.ndarray) -> np.ndarray:
        w = self._window(part)
        try:
            return read_valid(self.dataset, self.bands, w, data, self.nodata, self.masked)
        except RasterioError as exc:
            raise InputError(f"the mask of {self.path} could not be read at pixels "
                             f"{part.col_off},{part.row_off} ({first_line(exc)}); the file may "
                             "be truncated or corrupt: re-download or re-export it") from exc

    def _window(self, part: ChipWindow) -> Window:
        return Window(part.col_off - self.shift[0], part.row_off - self.shift[1], part.width,
                      part.height)

    def _read(self, part: ChipWindow) -> np.ndarray:
        w = self._window(part)
        try:
            return self.dataset.read(indexes=list(self.bands), window=w)
        except RasterioError as exc:
            raise InputError(f"{self.path} could not be read at pixels "
                             f"{part.col_off},{part.row_off} ({first_line(exc)}); the file may "
                             "be truncated or corrupt: re-download or re-export it") from exc


@dataclass
class _Plan:
    """One input raster, its (optional) pair view and the chip windows to cut."""

    view: _View
    pair: _View | None
    windows: list[ChipWindow]
    padded: bool
    files: tuple[str, ...] = ()  # the files GDAL reads for this input (a VRT's sources too)


def open_view(path: Path, config: TileConfig, stack: contextlib.ExitStack,
              option: str = "--bands") -> tuple[_View, Any]:
    """``path`` opened, checked and seen on the grid ``config`` asks for; -> (view, source).

    The one way tiling and training from rasters (:mod:`geogan.samplers`) open an
    input: georeference and pixels checked, ``config.bands`` (default: all but an
    alpha band), and a warped view for ``--crs/--res/--align-to``. Datasets are
    entered into ``stack``.
    """
    src = stack.enter_context(open_raster(path, allow_no_crs=config.allow_no_crs,
                                                no_crs_option=True))
    check_readable(src)
    bands = _check_bands(src, path, config.bands, option)
    view = _view_for(src, path, bands, config, stack)
    view.meta = read_meta(src).pick(bands)
    return view, src


def _plan(path: Path, config: TileConfig, stack: contextlib.ExitStack) -> _Plan:
    view, src = open_view(path, config, stack)

    region = ChipWindow(0, 0, view.width, view.height)
    pair_view = None
    if config.pair is not None:
        pair_view, region = _pair_view(view, config, stack)
    windows = chip_windows(view.width, view.height, config.size, config.overlap, region)

    padded = False
    for v in (view, pair_view):
        if v is None:
            continue
        cover = v.coverage
        outside = any(intersection(w, cover) != w for w in windows)
        padded = padded or outside
        if outside and v.nodata is None:
            what = (f"{path} is {view.width}x{view.height} px" if v is view else
                    f"the overlap of {path} and --pair {v.path} is "
                    f"{region.width}x{region.height} px")
            raise InputError(f"{what}, smaller than one {config.size} px chip, and {v.path} has "
                             "no nodata value to pad chips with; pass a smaller --size or set a "
                             "nodata value (gdal_edit.py -a_nodata)")
    if padded:
        log.warning("%s is smaller than one %d px chip where it is tiled: chips are padded with "
                    "nodata", path, config.size)
    return _Plan(view=view, pair=pair_view, windows=windows, padded=padded,
                 files=tuple(f for f in src.files if not f.startswith("/vsi")))


def _view_for(src: Any, path: Path, bands: tuple[int, ...], config: TileConfig,
              stack: contextlib.ExitStack) -> _View:
    """``src`` as is, or through a WarpedVRT onto the grid chosen by --crs/--res/--align-to."""
    if not config.warped:
        return _View(path, src, bands, src.nodata, src.dtypes[0], src.crs, src.transform,
                     src.width, src.height)
    if src.crs is None:
        raise GeoreferenceError(f"{path} has no CRS, so --crs/--res/--align-to cannot warp it; "
                                "assign a CRS first (gdal_edit.py -a_srs EPSG:XXXX)")
    crs, transform, width, height = _target_grid(src, path, config, stack)
    if crs == src.crs and transform.almost_equals(src.transform, 1e-12) and \
            (width, height) == (src.width, src.height):
        log.info("%s is already on the requested grid; reading it without warping", path)
        return _View(path, src, bands, src.nodata, src.dtypes[0], src.crs, src.transform,
                     src.width, src.height)
    vrt = _warped(src, path, crs, transform, width, height, config)
    stack.enter_context(vrt)
    return _View(path, vrt, bands, vrt.nodata, src.dtypes[0], crs, transform, width, height)


def _target_grid(src: Any, path: Path, config: TileConfig,
                 stack: contextlib.ExitStack) -> tuple[CRS, Any, int, int]:
    from rasterio.transform import Affine
    from rasterio.warp import aligned_target, calculate_default_transform, transform_bounds

    if config.align_to is not None:
        ref = stack.enter_context(open_raster(config.align_to))
        rt = ref.transform
        if rt.a <= 0 or rt.e >= 0:
            raise GeoreferenceError(f"--align-to {config.align_to} is not north-up; warp it "
                                    "north-up first (gdalwarp)")
        left, bottom, right, top = transform_bounds(src.crs, ref.crs, *src.bounds,
                                                    densify_pts=21)
        col0 = math.floor((left - rt.c) / rt.a + 1e-9)
        col1 = math.ceil((right - rt.c) / rt.a - 1e-9)
        row0 = math.floor((top - rt.f) / rt.e + 1e-9)
        row1 = math.ceil((bottom - rt.f) / rt.e - 1e-9)
        transform = rt @ Affine.translation(col0, row0)
        width, height = max(col1 - col0, 1), max(row1 - row0, 1)
        _check_target_grid(src, path, ref.crs, transform, width, height, "--align-to")
        return ref.crs, transform, width, height

    try:
        crs = CRS.from_user_input(config.crs) if config.crs is not None else src.crs
    except CRSError as exc:
        raise InputError(f"--crs {config.crs!r} is not a CRS GDAL understands; use e.g. "
                         "EPSG:32614") from exc
    try:
        transform, width, height = calculate_default_transform(
            src.crs, crs, src.width, src.height, *src.bounds, resolution=config.res)
    except Exception as exc:  # GDAL's warper raises RuntimeError/CPLE errors of its own
        raise GeoreferenceError(f"{path} cannot be reprojected to --crs {config.crs} "
                                f"({first_line(exc)}); choose a CRS whose area covers the "
                                "raster") from exc
    if config.res is not None:
        transform, width, height = aligned_target(transform, width, height, config.res)
    _check_target_grid(src, path, crs, transform, int(width), int(height), "--crs")
    return crs, transform, int(width), int(height)


def _check_target_grid(src: Any, path: Path, crs: CRS, transform: Any, width: int,
                       height: int, option: str) -> None:
    """Refuse a warped grid that misses the raster or is blown up by a CRS edge.

    The raster's outline, sampled densely and projected onto the grid, must fall inside
    it and fill a fair part of it; a raster cut by the antimeridian (or another edge of
    the target CRS) would otherwise become a grid around the world, of nodata.
    """
    import shapely
    from rasterio.warp import transform as warp_points

    n = 21
    cols, rows = np.meshgrid(np.linspace(0, src.width, n), np.linspace(0, src.height, n))
    xs, ys = src.transform * (cols.ravel(), rows.ravel())
    try:
        tx, ty = warp_points(src.crs, crs, xs, ys)
    except Exception as exc:
        raise GeoreferenceError(f"{path} cannot be projected to the {option} grid "
                                f"({first_line(exc)}); choose another CRS") from exc
    tx, ty = np.asarray(tx), np.asarray(ty)
    ok = np.isfinite(tx) & np.isfinite(ty)
    if not ok.any():
        raise GeoreferenceError(f"{path} lies outside the area of the {option} CRS; choose a "
                                "CRS that covers it")
    gc, gr = ~transform * (tx[ok], ty[ok])
    gc, gr = np.asarray(gc), np.asarray(gr)
    inside = (gc >= -1) & (gc <= width + 1) & (gr >= -1) & (gr <= height + 1)
    if not inside.any():
        raise GeoreferenceError(f"{path} does not overlap the {option} grid; choose a target "
                                "that covers the raster")
    hull = shapely.MultiPoint(np.c_[gc, gr]).convex_hull.area
    if min(width, height) < 1 or width * height > 16 * hull + 64 * (width + height):
        raise GeoreferenceError(f"{path} is cut by an edge of the {option} CRS (such as the "
                                f"antimeridian): its {width}x{height} px grid would be mostly "
                                "empty; choose a CRS in which the raster is whole (e.g. its UTM "
                                "zone)")


def _warped(src: Any, path: Path, crs: CRS, transform: Any, width: int, height: int,
            config: TileConfig) -> Any:
    from rasterio.vrt import WarpedVRT

    nodata = src.nodata
    if nodata is None:
        floating = np.issubdtype(np.dtype(src.dtypes[0]), np.floating)
        nodata = float("nan") if floating else 0
        log.warning("%s has no nodata value; pixels of the warped grid outside it are set to "
                    "%s and marked as nodata", path, nodata)
    return WarpedVRT(src, crs=crs, transform=transform, width=width, height=height,
                     resampling=RESAMPLING[config.resampling], nodata=nodata)


def _pair_view(view: _View, config: TileConfig,
               stack: contextlib.ExitStack) -> tuple[_View, ChipWindow]:
    """B on A's grid (shifted when already on the same pixel grid, warped otherwise) and
    the region of A's grid both cover."""
    assert config.pair is not None
    pview, region = pair_view(view, config.pair, config, stack)
    if region is None:
        raise InputError(f"--pair {config.pair} does not overlap {view.path}; pair two rasters "
                         "that cover the same ground")
    return pview, region


def pair_view(view: _View, pair_path: Path, config: TileConfig,
              stack: contextlib.ExitStack) -> tuple[_View, ChipWindow | None]:
    """Raster ``pair_path`` on ``view``'s grid, as ``tile --pair`` reads it, and the region
    of the grid both cover (None when they do not overlap).

    B is shifted when it already shares A's pixel grid, resampled (``config.resampling``)
    through a WarpedVRT otherwise; ``config.pair_bands`` picks its bands.
    """
    src = stack.enter_context(open_raster(pair_path))
    check_readable(src)
    if view.crs is None:
        raise GeoreferenceError(f"{view.path} has no CRS, so --pair {pair_path} cannot be put "
                                "on its grid; assign a CRS first (gdal_edit.py -a_srs)")
    bands = _check_bands(src, pair_path, config.pair_bands, "--pair-bands")
    meta = read_meta(src).pick(bands)
    grid = ChipWindow(0, 0, view.width, view.height)

    shift = _grid_shift(src, view)
    if shift is not None:
        pview = _View(pair_path, src, bands, src.nodata, src.dtypes[0], view.crs,
                      view.transform, view.width, view.height, shift, meta)
        region = intersection(grid, pview.coverage)
    else:
        from rasterio.warp import transform_bounds

        vrt = stack.enter_context(_warped(src, pair_path, view.crs, view.transform, view.width,
                                          view.height, config))
        pview = _View(pair_path, vrt, bands, vrt.nodata, src.dtypes[0], view.crs,
                      view.transform, view.width, view.height, meta=meta)
        left, bottom, right, top = transform_bounds(src.crs, view.crs, *src.bounds,
                                                    densify_pts=21)
        t = view.transform
        col0 = math.ceil((left - t.c) / t.a - 1e-6)
        col1 = math.floor((right - t.c) / t.a + 1e-6)
        row0 = math.ceil((top - t.f) / t.e - 1e-6)
        row1 = math.floor((bottom - t.f) / t.e + 1e-6)
        region = None
        if col1 > col0 and row1 > row0:
            region = intersection(grid, ChipWindow(col0, row0, col1 - col0, row1 - row0))
    return pview, region


def _grid_shift(src: Any, view: _View) -> tuple[int, int] | None:
    """Integer pixel offset of ``src`` on ``view``'s grid, or None if the grids differ."""
    t, g = src.transform, view.transform
    if src.crs != view.crs or not math.isclose(t.a, g.a, rel_tol=1e-9) \
            or not math.isclose(t.e, g.e, rel_tol=1e-9) or t.b or t.d or g.b or g.d:
        return None
    dc, dr = (t.c - g.c) / g.a, (t.f - g.f) / g.e
    if abs(dc - round(dc)) > 1e-6 or abs(dr - round(dr)) > 1e-6:
        return None
    return int(round(dc)), int(round(dr))


def _check_bands(src: Any, path: Path, bands: tuple[int, ...] | None,
                 option: str) -> tuple[int, ...]:
    if bands is None:
        bands = data_bands(src)  # an alpha band is a mask, not a colour
        if len(bands) < src.count:
            log.info("%s: its alpha band marks the valid pixels and becomes the chips' mask",
                     path)
    bad = [b for b in bands if not 1 <= b <= src.count]
    if bad:
        raise InputError(f"{option} {_fmt_bands(bands)} is out of range for {path}, which has "
                         f"{src.count} band(s); choose band numbers from 1 to {src.count}")
    check_pixels(src, path, bands, option)
    dtypes = {src.dtypes[b - 1] for b in bands}
    if len(dtypes) > 1:
        raise InputError(f"{option} {_fmt_bands(bands)} of {path} mixes data types "
                         f"({', '.join(sorted(dtypes))}); choose bands of one type")
    return tuple(bands)


# --------------------------------------------------------------------------- AOI


def read_aoi(aoi: Path, option: str = "--aoi") -> Any:
    """The non-empty geometries of vector file ``aoi`` as a GeoDataFrame (one-line errors)."""
    import geopandas as gpd

    if not aoi.exists():
        raise InputError(f"{option} {aoi} does not exist; check the path")
    try:
        gdf = gpd.read_file(aoi)
    except Exception as exc:  # pyogrio raises several types for unreadable files
        raise InputError(f"{option} {aoi} is not a vector file GDAL reads "
                         f"({first_line(exc)}); pass a GeoPackage, shapefile or GeoJSON") from exc
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    if gdf.empty:
        raise InputError(f"{option} {aoi} has no geometries; pass a file with polygons")
    return gdf


def aoi_area(gdf: Any, aoi: Path, view: _View, option: str = "--aoi") -> Any:
    """The union of the AOI's geometries in ``view``'s CRS (a shapely geometry)."""
    import shapely

    shapes = gdf
    if gdf.crs is None:
        log.warning("%s %s has no CRS; assuming the CRS of %s", option, aoi, view.path)
    elif view.crs is not None:
        shapes = gdf.to_crs(view.crs.to_wkt())
    else:
        log.warning("%s has no CRS; using %s %s coordinates as they are", view.path, option,
                    aoi)
    return shapely.union_all(shapes.geometry.values)


def _apply_aoi(aoi: Path, plans: list[_Plan]) -> int:
    """Keep only windows whose footprint intersects the AOI; return how many were dropped."""
    import shapely

    gdf = read_aoi(aoi)
    dropped = 0
    hit_any = False
    for plan in plans:
        view = plan.view
        area = aoi_area(gdf, aoi, view)
        shapely.prepare(area)
        bounds = np.array([_window_bounds(view.transform, w) for w in plan.windows])
        boxes = shapely.box(bounds[:, 0], bounds[:, 1], bounds[:, 2], bounds[:, 3])
        keep = shapely.intersects(area, boxes)
        if not keep.any():
            log.warning("--aoi %s does not intersect %s; no chips from it", aoi, view.path)
        hit_any = hit_any or bool(keep.any())
        dropped += int(np.count_nonzero(~keep))
        plan.windows = [w for w, k in zip(plan.windows, keep, strict=True) if k]
    if not hit_any:
        names = ", ".join(str(p.view.path) for p in plans)
        raise InputError(f"--aoi {aoi} does not intersect {names}; check the AOI's extent and "
                         "CRS")
    return dropped


# --------------------------------------------------------------------------- cutting


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


class _Records:
    """Index rows, kept as columns (lean for hundreds of thousands of chips)."""

    def __init__(self) -> None:
        self.layers: dict[str, tuple[CRS | None, dict[str, list[Any]]]] = {}

    def columns(self, crs: CRS | None) -> dict[str, list[Any]]:
        """The columns of the layer for ``crs`` (one layer per distinct CRS)."""
        key = crs.to_wkt() if crs is not None else ""
        if key not in self.layers:
            self.layers[key] = (crs, {"minx": [], "miny": [], "maxx": [], "maxy": []})
        return self.layers[key][1]

    @staticmethod
    def add(cols: dict[str, list[Any]], bounds: tuple[float, float, float, float],
            **row: Any) -> None:
        for k, v in zip(("minx", "miny", "maxx", "maxy"), bounds, strict=True):
            cols[k].append(v)
        for k, v in row.items():
            cols.setdefault(k, []).append(v)

    def write(self, path: Path) -> None:
        import geopandas as gpd
        import shapely

        layers = [(crs, cols) for crs, cols in self.layers.values() if cols["minx"]]
        for i, (crs, cols) in enumerate(layers):
            b = [np.asarray(cols.pop(k), dtype=np.float64) for k in ("minx", "miny", "maxx",
                                                                        "maxy")]
            geometry = shapely.box(*b)
            gdf = gpd.GeoDataFrame(cols, geometry=geometry,
                                   crs=crs.to_wkt() if crs is not None else None)
            layer = INDEX_LAYER if i == 0 else f"{INDEX_LAYER}_{i + 1}"
            if i:
                log.warning("inputs have several CRSs; chips in %s are in layer %s of %s",
                            crs, layer, path)
            gdf.to_file(path, layer=layer, driver="GPKG")


class _ChipWriter:
    """Writes chips in background threads, with a bounded number waiting."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque[Future[None]] = deque()

    def __enter__(self) -> _ChipWriter:
        if self.threads > 0:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="geogan-chip")
        return self

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        if self._pool is None:
            fn(*args)
            return
        self._pending.append(self._pool.submit(fn, *args))
        while len(self._pending) > 4 * self.threads:
            self._pending.popleft().result()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._pool is None:
            return
        try:
            if exc_type is None:
                while self._pending:
                    self._pending.popleft().result()
        finally:
            for fut in self._pending:
                fut.cancel()
            self._pool.shutdown(wait=True)


def _tile_one(plan: _Plan, outdir: Path, config: TileConfig, writer: _ChipWriter,
              records: _Records, stats: _Stats, cancel: CancelCheck | None) -> None:
    """Cut one input (and its pair): read runs of chips, filter, hand chips to the writer."""
    views = [plan.view] if plan.pair is None else [plan.view, plan.pair]
    dirs = [outdir] if plan.pair is None else [outdir / d for d in PAIR_DIRS]
    for d in dirs:
        d.mkdir(exist_ok=True)
    profiles = [_chip_profile(v, config.size, config.compress, config.creation_options)
                for v in views]
    grid_transform = plan.view.transform
    grid = ChipWindow(0, 0, plan.view.width, plan.view.height)
    columns = records.columns(plan.view.crs)
    stem, size = plan.view.path.stem, config.size

    for union, group in _read_groups(plan.windows, size, views):
        check_cancel(cancel, "tiling")
        data = [v.read(union) for v in views]  # each (bands, size, union width)
        for win in group:
            check_cancel(cancel, "tiling")
            c = win.col_off - union.col_off
            chips = [d[:, :, c:c + size] for d in data]
            valids = [v.valid(win, ch) for v, ch in zip(views, chips, strict=True)]
            fractions = [nodata_fraction(ok) for ok in valids]
            rejected = rejection(chips, valids, config.max_nodata, config.min_std)
            if rejected == "nodata":
                stats.skipped_nodata += 1
            elif rejected == "std":
                stats.skipped_std += 1
            else:
                name = chip_name(stem, win.col_off, win.row_off)
                transform = window_transform(Window(*win), grid_transform)
                tags = _valid_tags(win, grid)
                for folder, chip, ok, view, profile in zip(dirs, chips, valids, views, profiles,
                                                           strict=True):
                    writer.submit(_write_chip, folder / name, chip, profile, transform, tags,
                                  view.meta, ok if view.masked else None)
                row: dict[str, Any] = dict(chip=name, source=str(views[0].path),
                                           col_off=win.col_off, row_off=win.row_off,
                                           width=size, height=size, nodata_frac=fractions[0])
                if len(views) == 2:
                    row.update(source_b=str(views[1].path), nodata_frac_b=fractions[1])
                records.add(columns, _window_bounds(grid_transform, win), **row)
                stats.kept += 1
            stats.step()


def _read_groups(windows: list[ChipWindow], size: int,
                 views: list[_View]) -> Iterator[tuple[ChipWindow, list[ChipWindow]]]:
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


def _chip_profile(view: _View, size: int, compress: str,
                  creation_options: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    base = {"crs": view.crs, "transform": view.transform, "width": size, "height": size,
            "count": len(view.bands), "dtype": view.dtype, "nodata": view.nodata}
    profile = output_profile(base, compress="zstd" if compress == "none" else compress,
                             meta=view.meta)
    if compress == "none":
        profile.pop("compress")
        profile.pop("predictor", None)
    if view.crs is None:
        profile.pop("crs")
    # Chips are small: one strip per band, band-interleaved (the fastest to write and read).
    profile.update(tiled=False, interleave="band")
    profile.pop("blockxsize")
    profile["blockysize"] = size
    profile.update(creation_kwargs(creation_options))  # the user's --co last: they win
    check_creation_options(profile, creation_options)
    return profile


def _write_chip(path: Path, data: np.ndarray, profile: dict[str, Any], transform: Any,
                tags: dict[str, str], meta: RasterMeta | None = None,
                valid: np.ndarray | None = None) -> None:
    """Write one chip with the source's band meaning and, for masked sources, its mask."""
    try:
        with gdal_errors(path), rasterio.open(path, "w", **{**profile, "transform": transform}) \
                as dst:
            if meta is not None:
                write_meta(dst, meta)
            dst.write(data)
            if valid is not None:
                dst.write_mask(np.where(valid, 255, 0).astype(np.uint8))
            if tags:
                dst.update_tags(**tags)
    except RasterioError as exc:
        raise write_error(path, exc.__cause__ or exc) from exc
    except OSError as exc:
        raise write_error(path, exc) from exc


def _chips_bytes(plans: Sequence[_Plan], config: TileConfig) -> int:
    """Uncompressed bytes of every candidate chip (an upper bound of what is written)."""
    total = 0
    for plan in plans:
        for view in (plan.view, plan.pair):
            if view is not None:
                per_chip = config.size ** 2 * len(view.bands) * np.dtype(view.dtype).itemsize
                total += len(plan.windows) * per_chip
    return total


def _valid_tags(win: ChipWindow, grid: ChipWindow) -> dict[str, str]:
    part = intersection(win, grid)
    if part is None or part == win:
        return {}
    return {VALID_WINDOW_TAG: f"{part.col_off - win.col_off} {part.row_off - win.row_off} "
                              f"{part.width} {part.height}"}


def _window_bounds(transform: Any, win: ChipWindow) -> tuple[float, float, float, float]:
    """``(minx, miny, maxx, maxy)`` of a chip, computed as rasterio computes a dataset's bounds."""
    t = window_transform(Window(*win), transform)
    x0, x1 = t.c, t.c + t.a * win.width
    y0, y1 = t.f + t.e * win.height, t.f
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def nodata_fraction(valid: np.ndarray) -> float:
    """The fraction of a chip's pixels that hold no data (``valid`` from :meth:`_View.valid`)."""
    return 1.0 - float(np.count_nonzero(valid)) / valid.size


def rejection(chips: Sequence[np.ndarray], valids: Sequence[np.ndarray], max_nodata: float,
              min_std: float) -> str | None:
    """Why a chip (and its pair) is dropped: ``"nodata"``, ``"std"`` or None (kept).

    The ``--max-nodata``/``--min-std`` rule of ``geogan tile``, shared with the random
    windows of :mod:`geogan.samplers`: every side must have a nodata fraction of at
    most ``max_nodata`` and, when ``min_std`` > 0, a band whose std reaches it.
    """
    if any(nodata_fraction(ok) > max_nodata for ok in valids):
        return "nodata"
    if min_std > 0 and any(_chip_std(ch, ok) < min_std
                           for ch, ok in zip(chips, valids, strict=True)):
        return "std"
    return None


def _chip_std(chip: np.ndarray, valid: np.ndarray) -> float:
    """The largest per-band standard deviation over the chip's ``valid`` pixels."""
    values = chip[:, valid]
    if values.shape[1] == 0:
        return 0.0
    with np.errstate(invalid="ignore"):
        return float(np.nanmax(values.astype(np.float64).std(axis=1)))


# --------------------------------------------------------------------------- checks


def _check_distinct_stems(paths: list[Path]) -> None:
    seen: dict[str, Path] = {}
    for p in paths:
        if p.stem in seen and seen[p.stem] != p:
            raise InputError(f"{seen[p.stem]} and {p} have the same name, so their chips would "
                             "collide; rename one of them")
        seen[p.stem] = p


def _check_output_dir(outdir: Path, config: TileConfig, inputs: list[Path]) -> None:
    """Fail before any work if ``outdir`` cannot be used (atomic_directory checks again)."""
    if outdir.exists() and not outdir.is_dir():
        raise OutputError(f"{outdir} exists and is not a folder; choose another output folder")
    check_replaceable(outdir, CHIP_FOLDER, config.overwrite, _all_inputs(config, inputs))


def _all_inputs(config: TileConfig, inputs: Sequence[Path],
                plans: Sequence[_Plan] = ()) -> list[Path]:
    """Every file the job reads: inputs, AOI, --align-to, --pair and the files behind them."""
    files = [*inputs, *(Path(o) for o in (config.aoi, config.align_to, config.pair)
                        if o is not None)]
    for plan in plans:
        files.extend(Path(f) for f in plan.files)
    return files


def _nothing_kept_message(paths: list[Path], config: TileConfig, stats: _Stats,
                          plans: list[_Plan]) -> str:
    names = ", ".join(str(p) for p in paths)
    msg = (f"no chip from {names} was kept: {stats.skipped_nodata} had a nodata fraction over "
           f"--max-nodata {config.max_nodata:g} and {stats.skipped_std} a std under --min-std "
           f"{config.min_std:g}; loosen those options")
    if any(p.padded for p in plans):
        msg += (f" (rasters smaller than one {config.size} px chip are padded with nodata: "
                "raise --max-nodata or pass a smaller --size)")
    return msg


def _fmt_bands(bands: tuple[int, ...]) -> str:
    return ",".join(str(b) for b in bands)

