"""Rebuild one raster from georeferenced chips, window by window.

:func:`mosaic_chips` is the job behind ``geogan mosaic``. Each chip lands where its
own transform puts it; the chips must share CRS, pixel size and pixel grid, dtype,
band count and nodata. Where chips overlap their valid pixels are blended (a plain
mean, or a feather that favours the chip whose centre is nearer); where no chip
covers, the output is nodata. The output is a tiled GeoTIFF (ZSTD with a predictor,
BIGTIFF=IF_SAFER), or a Cloud Optimized GeoTIFF with overviews.

Memory stays bounded: the output is written one window at a time, and only the
chips that touch the window are read for it. Pixels are averaged in float64, so
identical overlapping values come back bit-exact and tile-then-mosaic reproduces
the source raster.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.transform import Affine
from rasterio.windows import Window

from geogan.contract import choices
from geogan.contract.choices import COMPRESSIONS
from geogan.contract.names import VALID_WINDOW_TAG
from geogan.contract.options import MOSAIC
from geogan.errors import InputError, first_line, require_choice
from geogan.fileio import check_free_space, check_not_read, check_output_file
from geogan.grid import ChipWindow, block_windows, feather_weights, intersection
from geogan.inputs import GdalOutput, as_output
from geogan.progress import CancelCheck, ProgressCallback, check_cancel
from geogan.provenance import carried
from geogan.rasterio_io import files_read, gdal_env, open_raster
from geogan.rasterio_meta import (
    RasterMeta,
    check_pixels,
    data_bands,
    has_mask,
    read_meta,
    read_valid,
    write_meta,
)
from geogan.sink import atomic_raster, check_creation_options, open_for_write, output_profile

log = logging.getLogger(__name__)


def _uniform_weights(height: int, width: int) -> np.ndarray:
    return np.ones((height, width), dtype=np.float64)


#: Blend strategies: name -> per-chip weights ``(height, width)``.
_CHIP_WEIGHTS: dict[str, Callable[[int, int], np.ndarray]] = {
    "mean": _uniform_weights,
    "feather": feather_weights,
}
#: Chip weightings by name, keyed by geogan.contract.choices.CHIP_BLENDS (the --blend choices).
BLENDS: dict[str, Callable[[int, int], np.ndarray]] = {
    name: _CHIP_WEIGHTS[name] for name in choices.CHIP_BLENDS}

#: Largest accumulator (bytes) for one output window.
_WINDOW_BUDGET = 64 * 2**20
_CHIP_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class MosaicConfig:
    """What :func:`mosaic_chips` does; the fields mirror ``geogan mosaic``'s options."""

    blend: str = MOSAIC.default_of("blend")
    cog: bool = MOSAIC.default_of("cog")
    compress: str = MOSAIC.default_of("compress")
    allow_no_crs: bool = MOSAIC.default_of("allow_no_crs")
    overwrite: bool = MOSAIC.default_of("overwrite")
    #: GDAL creation options (``--co KEY=VALUE``), applied after geogan's own.
    creation_options: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        require_choice("blend", self.blend, BLENDS)
        require_choice("compress", self.compress, COMPRESSIONS)


@dataclass(frozen=True)
class _Chip:
    path: Path
    crs: CRS | None
    transform: Affine
    width: int
    height: int
    count: int
    dtype: str
    nodata: float | None
    valid: ChipWindow  # part of the chip holding raster pixels (all of it unless padded)
    bands: tuple[int, ...] = ()  # 1-based bands read (all but an alpha band)
    masked: bool = False  # validity from a per-dataset mask or alpha band, not only nodata
    meta: RasterMeta | None = None  # band meaning of ``bands``
    files: tuple[Path, ...] = ()  # the files GDAL reads for the chip (a VRT's sources too)


def mosaic_chips(inputs: Sequence[str | Path], output: str | Path, config: MosaicConfig,
                 progress: ProgressCallback | None = None,
                 cancel: CancelCheck | None = None) -> Path:
    """Mosaic the chips in ``inputs`` (files, or folders of ``*.tif``) into ``output``.

    Raises :class:`InputError` when there are no chips or they do not fit together
    (CRS, pixel grid, dtype, bands, nodata), :class:`OutputError` when ``output``
    exists without ``config.overwrite`` or cannot be written. ``progress(done,
    total)`` counts output windows; ``cancel()`` stops the job, leaving nothing.
    """
    output = as_output(output)
    check_output_file(output, config.overwrite)
    paths = _collect(inputs, output)

    with gdal_env(GDAL_CACHEMAX=64):
        chips = [_read_header(p, config.allow_no_crs) for p in paths]
        check_not_read([output], {ch.path: ch.files for ch in chips})
        _check_compatible(chips)
        ref = chips[0]
        transform, width, height, places, valid = _output_grid(chips)
        block = _window_size(ref.count)
        buckets = _buckets(valid, block)
        windows = list(block_windows(width, height, block))
        masked = any(ch.masked for ch in chips)
        use_mask = ref.nodata is None and (masked or not _fully_covered(windows, buckets, valid,
                                                                         block))
        if use_mask and not masked:
            log.warning("chips have no nodata value and leave gaps; gaps are marked in a mask "
                        "band of %s", output)

        meta = carried([ch.meta for ch in chips])  # synthetic if any chip is
        profile = output_profile({"crs": ref.crs, "transform": transform, "width": width,
                                  "height": height, "count": ref.count, "dtype": ref.dtype,
                                  "nodata": ref.nodata}, compress=config.compress,
                                 meta=meta,
                                 creation_options=() if config.cog else config.creation_options)
        check_creation_options(profile, config.creation_options,
                               "COG" if config.cog else "GTiff")
        if ref.crs is None:
            profile.pop("crs")
        log.info("mosaicking %d chips into %s (%d x %d px, %s blend)", len(chips), output,
                 width, height, config.blend)

        weigh = BLENDS[config.blend]
        itemsize = np.dtype(profile["dtype"]).itemsize
        check_free_space(output, width * height * int(profile["count"]) * itemsize,
                         certain=False)
        with atomic_raster(output, overwrite=config.overwrite, cog=config.cog,
                           compress=config.compress,
                           creation_options=config.creation_options) as target:
            with open_for_write(target, profile, output) as dst:
                if meta is not None:
                    write_meta(dst, meta)
                for n, win in enumerate(windows, 1):
                    check_cancel(cancel, "mosaic")
                    members = buckets.get((win.col_off // block, win.row_off // block), [])
                    data, covered = _blend_window(win, members, chips, places, valid, weigh,
                                                  ref)
                    w = Window(*win)
                    dst.write(data, window=w)
                    if use_mask:
                        dst.write_mask(np.where(covered, 255, 0).astype(np.uint8), window=w)
                    if progress is not None:
                        progress(n, len(windows))
    log.info("wrote %s", output)
    return output


def _output_grid(chips: list[_Chip]) -> tuple[Affine, int, int, list[tuple[int, int]],
                                               list[ChipWindow]]:
    """The output's transform, width and height, and each chip's place (pixel offset of
    its corner) and valid part in output pixels."""
    ref = chips[0]
    offsets = _offsets(chips)
    rects = [ChipWindow(c + ch.valid.col_off, r + ch.valid.row_off, ch.valid.width,
                        ch.valid.height) for ch, (c, r) in zip(chips, offsets, strict=True)]
    col0 = min(r.col_off for r in rects)
    row0 = min(r.row_off for r in rects)
    width = max(r.col_end for r in rects) - col0
    height = max(r.row_end for r in rects) - row0
    # Origin taken from the chips that define it, so it is exact, not accumulated.
    left = next(ch.transform.c + ch.valid.col_off * ch.transform.a
                for ch, r in zip(chips, rects, strict=True) if r.col_off == col0)
    top = next(ch.transform.f + ch.valid.row_off * ch.transform.e
               for ch, r in zip(chips, rects, strict=True) if r.row_off == row0)
    transform = Affine(ref.transform.a, 0.0, left, 0.0, ref.transform.e, top)
    places = [(c - col0, r - row0) for c, r in offsets]
    valid = [ChipWindow(r.col_off - col0, r.row_off - row0, r.width, r.height)
             for r in rects]
    return transform, width, height, places, valid


def _buckets(valid: list[ChipWindow], block: int) -> dict[tuple[int, int], list[int]]:
    """(block column, block row) of each output window -> the chips whose valid part
    touches it."""
    buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, v in enumerate(valid):
        for bj in range(v.row_off // block, (v.row_end - 1) // block + 1):
            for bi in range(v.col_off // block, (v.col_end - 1) // block + 1):
                buckets[(bi, bj)].append(i)
    return buckets


def _blend_window(win: ChipWindow, members: list[int], chips: list[_Chip],
                  places: list[tuple[int, int]], valid: list[ChipWindow],
                  weigh: Callable[[int, int], np.ndarray],
                  ref: _Chip) -> tuple[np.ndarray, np.ndarray]:
    """The output pixels of ``win`` ``(C, H, W)`` and where any chip covered them ``(H, W)``."""
    acc = np.zeros((ref.count, win.height, win.width), dtype=np.float64)
    wsum = np.zeros((win.height, win.width), dtype=np.float64)
    for i in members:
        part = intersection(win, valid[i])
        if part is None:
            continue
        chip = chips[i]
        cc, cr = part.col_off - places[i][0], part.row_off - places[i][1]
        data, ok = _read_chip(chip, Window(cc, cr, part.width, part.height))  # (C, h, w)
        weights = weigh(chip.height, chip.width)[cr:cr + part.height, cc:cc + part.width]
        weights = np.where(ok, weights, 0.0)
        oc, orow = part.col_off - win.col_off, part.row_off - win.row_off
        sl = (slice(orow, orow + part.height), slice(oc, oc + part.width))
        ok = weights > 0
        acc[(slice(None), *sl)] += np.where(ok, data, 0) * weights
        wsum[sl] += weights
    covered = wsum > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = acc / wsum
    dtype = np.dtype(ref.dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        mean = np.clip(np.rint(np.where(covered, mean, 0)), info.min, info.max)
    fill = ref.nodata if ref.nodata is not None else 0
    out = np.where(covered, mean, fill).astype(dtype)
    return out, covered


def _read_chip(chip: _Chip, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """A chip's pixels ``(C, h, w)`` in ``window`` and where they are valid ``(h, w)``."""
    try:
        with rasterio.open(chip.path) as src:
            bands = chip.bands or tuple(range(1, src.count + 1))
            data = src.read(list(bands), window=window)
            return data, read_valid(src, bands, window, data, chip.nodata, chip.masked)
    except RasterioError as exc:
        raise InputError(f"chip {chip.path} could not be read ({first_line(exc)}); it may be "
                         "truncated: re-create the chips or remove it") from exc


def _collect(inputs: Sequence[str | Path], output: Path | GdalOutput) -> list[Path]:
    from geogan.inputs import GdalPath, as_input

    paths: list[Path] = []
    for item in map(as_input, inputs):
        if isinstance(item, GdalPath):
            paths.append(item)  # type: ignore[arg-type]
        elif item.is_dir():
            found = sorted(p for p in item.iterdir() if p.is_file()
                           and p.suffix.lower() in _CHIP_SUFFIXES and not p.name.startswith("."))
            if not found:
                hint = ""
                if (item / "A").is_dir() and (item / "B").is_dir():
                    hint = f"; for paired chips pass {item / 'A'} or {item / 'B'}"
                raise InputError(f"{item} holds no .tif chips{hint}")
            paths.extend(found)
        elif item.exists():
            paths.append(item)
        else:
            raise InputError(f"{item} does not exist; pass chip files or folders of chips")
    if not paths:
        raise InputError("no chips given; pass chip files or a folder of chips")
    out = output.resolve()
    if any(p.resolve() == out for p in paths):
        raise InputError(f"output {output} is also one of the input chips; choose another "
                         "output path")
    return list(dict.fromkeys(paths))


def _read_header(path: Path, allow_no_crs: bool) -> _Chip:
    with open_raster(path, allow_no_crs=allow_no_crs, no_crs_option=True) as src:
        valid = ChipWindow(0, 0, src.width, src.height)
        tag = src.tags().get(VALID_WINDOW_TAG)
        if tag:
            try:
                c, r, w, h = (int(v) for v in tag.split())
            except ValueError as exc:
                raise InputError(f"chip {path} has a malformed {VALID_WINDOW_TAG} tag "
                                 f"{tag!r}; re-create the chips") from exc
            valid = intersection(valid, ChipWindow(c, r, w, h)) or valid
        if len(set(src.dtypes)) > 1:
            raise InputError(f"chip {path} mixes data types ({', '.join(src.dtypes)}); "
                             "mosaic chips with one data type")
        bands = data_bands(src)  # an alpha band is the chip's mask, not a colour
        check_pixels(src, path, bands)
        return _Chip(path, src.crs, src.transform, src.width, src.height, len(bands),
                     src.dtypes[0], src.nodata, valid, bands, has_mask(src, bands),
                     read_meta(src).pick(bands), files_read(src))


def _check_compatible(chips: list[_Chip]) -> None:
    ref = chips[0]
    for chip in chips[1:]:
        problems = []
        if chip.crs != ref.crs:
            problems.append(("CRS", chip.crs, ref.crs))
        if chip.count != ref.count:
            problems.append(("band count", chip.count, ref.count))
        if chip.dtype != ref.dtype:
            problems.append(("data type", chip.dtype, ref.dtype))
        if not _same_nodata(chip.nodata, ref.nodata):
            problems.append(("nodata", chip.nodata, ref.nodata))
        if not (math.isclose(chip.transform.a, ref.transform.a, rel_tol=1e-9)
                and math.isclose(chip.transform.e, ref.transform.e, rel_tol=1e-9)):
            problems.append(("pixel size", (chip.transform.a, -chip.transform.e),
                             (ref.transform.a, -ref.transform.e)))
        if problems:
            what, got, want = problems[0]
            raise InputError(f"chip {chip.path} has {what} {_short(got)} but {ref.path} has "
                             f"{_short(want)}; mosaic chips of one raster at a time")


def _offsets(chips: list[_Chip]) -> list[tuple[int, int]]:
    """Each chip's pixel offset from the first chip, checking they share one pixel grid."""
    ref = chips[0].transform
    out = []
    for chip in chips:
        t = chip.transform
        dc, dr = (t.c - ref.c) / ref.a, (t.f - ref.f) / ref.e
        if abs(dc - round(dc)) > 1e-6 or abs(dr - round(dr)) > 1e-6:
            raise InputError(f"chip {chip.path} is not on the pixel grid of {chips[0].path} "
                             f"(offset {dc:.4f}, {dr:.4f} px); mosaic chips cut from one grid")
        out.append((int(round(dc)), int(round(dr))))
    return out


def _fully_covered(windows: list[ChipWindow], buckets: dict[tuple[int, int], list[int]],
                   valid: list[ChipWindow], block: int) -> bool:
    for win in windows:
        covered = np.zeros((win.height, win.width), dtype=bool)
        for i in buckets.get((win.col_off // block, win.row_off // block), []):
            part = intersection(win, valid[i])
            if part is not None:
                r, c = part.row_off - win.row_off, part.col_off - win.col_off
                covered[r:r + part.height, c:c + part.width] = True
        if not covered.all():
            return False
    return True


def _window_size(count: int) -> int:
    """The largest output window side (a multiple of 256) whose accumulators fit the budget."""
    for side in (2048, 1024, 512):
        if (count + 1) * 8 * side * side <= _WINDOW_BUDGET:
            return side
    return 256


def _same_nodata(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


def _short(value: Any) -> str:
    if isinstance(value, CRS):
        return value.to_string() or "(custom)"
    return str(value)

