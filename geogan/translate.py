"""Translate whole rasters with a trained generator, window by window, writing as it goes.

The raster is cut into overlapping windows (see :mod:`geogan.blend` for the
layout); windows reaching past the raster edge are filled by reflection. Each
window goes through the generator, its output is weighted by a smooth blend
profile and added into an accumulator that holds only the rows of the current
window row (``tile`` rows by the raster width). As soon as a window row is done,
the rows no later window touches are divided by the summed weight, mapped back to
raster values with the checkpoint's normalisation, and handed to the writer.
Peak memory therefore depends on ``tile`` and the raster width, not its height.

Three threads overlap the work: a reader (GDAL reads, reflection padding,
batching), the caller's thread (device transfer, normalisation, the generator,
blending on the device) and a writer (nodata, GDAL writes and compression).

Outputs keep the input's CRS, transform, size and nodata mask; they have the
band count and dtype of the generator's target domain and are written to a
temporary file that is renamed only when complete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from geogan import devices, normstats
from geogan.blend import BLENDS, AxisLayout, blend_weights
from geogan.checkpoint import LoadedGenerator, load_generator
from geogan.errors import CheckpointError, GeoganError, InputError, OutputError, first_line
from geogan.fileio import check_free_space, check_output_file, is_complete_raster
from geogan.formats import COMPRESSIONS as _COMPRESSIONS
from geogan.normalize import BandNorm
from geogan.normstats import DEFAULT_NORM, NORM_MODES, NormStats, stats_path_for
from geogan.progress import CancelCheck, ProgressCallback, check_cancel

if TYPE_CHECKING:
    import torch

    from geogan.rasterio_meta import RasterMeta

log = logging.getLogger(__name__)

#: ``--precision`` choices: ``auto`` is bf16 on CUDA and on CPUs with native bf16
#: (AVX512-BF16, AMX), fp32 on other CPUs.
PRECISIONS: tuple[str, ...] = ("auto", "bf16", "fp32")
#: ``--compress`` choices (the same as :data:`geogan.rasterio_io.COMPRESSIONS`).
COMPRESSIONS: tuple[str, ...] = _COMPRESSIONS
#: Output file name endings that make OUTPUT a file rather than a folder.
OUTPUT_SUFFIXES: tuple[str, ...] = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
#: Plain pictures (no georeference): read with a warning, written by GDAL's drivers.
PICTURE_DRIVERS: dict[str, str] = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
#: Default batch size per device type when ``batch_size`` is None.
AUTO_BATCH: dict[str, int] = {"cuda": 8, "cpu": 1}
#: GDAL block cache (MB) while translating, so cached blocks do not grow with the raster.
GDAL_CACHE_MB = 128
#: Items waiting between threads (each a batch of windows or a block of output rows).
QUEUE_DEPTH = 2
_POLL_S = 0.1
#: Columns de-normalised at a time when a block of rows is finished.
_FINISH_COLUMNS = 2048


@dataclass(frozen=True)
class TranslateConfig:
    """How to translate: windowing, blending, device and output options.

    ``tile``/``overlap`` are in pixels (``0 <= 2 * overlap <= tile``); ``blend`` is
    one of :data:`geogan.blend.BLENDS`; ``batch_size`` None picks
    :data:`AUTO_BATCH` for the device; ``device`` is ``auto``, ``cpu``, ``cuda`` or
    ``cuda:N``; ``bands`` are 1-based input bands to use (all when None).
    """

    tile: int = 512
    overlap: int = 64
    blend: str = "cosine"
    batch_size: int | None = None
    device: str = "auto"
    precision: str = "auto"
    cog: bool = False
    compress: str = "zstd"
    bands: tuple[int, ...] | None = None
    skip_existing: bool = False
    overwrite: bool = False
    compile: bool = False
    #: GDAL creation options (``--co KEY=VALUE``), applied after geogan's own.
    creation_options: tuple[tuple[str, str], ...] = ()
    #: Threads for the generator on the CPU and GDAL's compression (None: all cores).
    threads: int | None = None
    norm: str = DEFAULT_NORM
    stats: str | None = None
    save_stats: bool = False
    shared_stats: bool = False

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise InputError(f"--threads must be at least 1, got {self.threads}")
        if self.tile < 8:
            raise InputError(f"--tile must be at least 8 pixels, got {self.tile}")
        if not 0 <= 2 * self.overlap <= self.tile:
            raise InputError(f"--overlap must be between 0 and half the tile ({self.tile // 2}), "
                             f"got {self.overlap}")
        if self.blend not in BLENDS:
            raise InputError(f"unknown --blend {self.blend!r}; choose one of {', '.join(BLENDS)}")
        if self.batch_size is not None and self.batch_size < 1:
            raise InputError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.precision not in PRECISIONS:
            raise InputError(f"unknown --precision {self.precision!r}; choose one of "
                             f"{', '.join(PRECISIONS)}")
        if self.compress not in COMPRESSIONS:
            raise InputError(f"unknown --compress {self.compress!r}; choose one of "
                             f"{', '.join(COMPRESSIONS)}")
        if self.bands is not None:
            if not self.bands or any(int(b) < 1 for b in self.bands):
                raise InputError(f"--bands must list 1-based band numbers such as 1,2,3; "
                                 f"got {self.bands}")
            object.__setattr__(self, "bands", tuple(int(b) for b in self.bands))
        if self.skip_existing and self.overwrite:
            raise InputError("--skip-existing and --overwrite contradict each other; pass one")
        if self.norm not in NORM_MODES:
            raise InputError(f"unknown --norm {self.norm!r}; choose one of {', '.join(NORM_MODES)}")
        if self.norm == "window" and (self.stats or self.save_stats or self.shared_stats):
            raise InputError("--norm window uses no statistics; drop --stats, --save-stats and "
                             "--shared-stats or choose --norm global")
        if self.shared_stats and (self.norm != "global" or self.stats):
            raise InputError("--shared-stats estimates one global set over all inputs; it needs "
                             "--norm global and no --stats")


# --------------------------------------------------------------------------- inputs and outputs


def expand_inputs(inputs: Iterable[str | os.PathLike[str]],
                  files_from: str | os.PathLike[str] | None = None) -> list[Path]:
    """Files, folders (their rasters, not recursive), globs and ``--files-from`` lists."""
    from geogan.inputs import expand_inputs as expand

    return expand(inputs, files_from=files_from)  # type: ignore[return-value]  (GdalPath too)


def map_outputs(files: Sequence[Path], output: str | os.PathLike[str]) -> list[Path]:
    """Output path of each input file.

    OUTPUT is a file when the inputs name a single raster and OUTPUT ends in .tif
    or .tiff and is not an existing folder; otherwise it is a folder that receives
    ``<input stem>.tif`` for each input.
    """
    out = Path(output)
    if (not out.is_dir() and out.suffix.lower() not in OUTPUT_SUFFIXES
            and re.fullmatch(r"\.[A-Za-z][A-Za-z0-9]{1,4}", out.suffix)):
        raise OutputError(f"-o {out}: geogan translate writes GeoTIFF (or PNG/JPEG for "
                          "pictures); give a .tif file name or a folder (to use a folder of "
                          "that name, create it first)")
    single = (len(files) == 1 and not out.is_dir()
              and out.suffix.lower() in OUTPUT_SUFFIXES)
    if single:
        outs = [out]
    else:
        if out.exists() and not out.is_dir():
            raise OutputError(f"{out} is a file but {len(files)} input(s) need an output folder; "
                              "give a folder with -o")
        outs = [out / f"{f.stem}.tif" for f in files]
        by_name: dict[Path, Path] = {}
        for f, o in zip(files, outs, strict=True):
            if o in by_name:
                raise InputError(f"{by_name[o]} and {f} would both be written to {o}; "
                                 "rename one or translate them into different folders")
            by_name[o] = f
    for f, o in zip(files, outs, strict=True):
        if o.exists() and o.resolve() == f.resolve():
            raise OutputError(f"output {o} would replace its input; choose another output")
    return outs


def rank_share() -> tuple[int, int]:
    """``(rank, world_size)`` from torchrun's RANK/WORLD_SIZE variables (``(0, 1)`` alone)."""
    try:
        rank = int(os.environ.get("RANK", "0"))
        world = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError as exc:
        raise InputError(f"RANK/WORLD_SIZE must be integers ({exc}); launch with torchrun") from exc
    if world < 1 or not 0 <= rank < world:
        raise InputError(f"RANK={rank} does not fit WORLD_SIZE={world}; launch with torchrun")
    return rank, world


def resolve_device(name: str) -> str:
    """``--device`` -> a device string (``cuda:LOCAL_RANK`` under torchrun, else ``cpu``)."""
    return str(devices.resolve_device(name))


def select_input_bands(count: int, dtypes: Sequence[str], path: Path,
                       generator: LoadedGenerator, bands: tuple[int, ...] | None,
                       default: Sequence[int] | None = None) -> list[int]:
    """1-based bands to read, checked against the generator's input band count and dtype.

    Without ``bands`` the ``default`` bands are read (all bands when None; callers
    pass :func:`geogan.rasterio_meta.data_bands`, which leaves an alpha band out).
    """
    if bands:
        indexes = list(bands)
    else:
        indexes = list(default) if default is not None else list(range(1, count + 1))
    for b in indexes:
        if b > count:
            raise InputError(f"--bands {b} is out of range: {path} has {count} band(s)")
    want = generator.in_norm.bands
    if len(indexes) != want:
        extra = " besides its alpha band" if not bands and len(indexes) < count else ""
        hint = f"; use a {want}-band raster or a checkpoint trained on {len(indexes)} band(s)"
        if bands:
            hint = f"; list {want} bands in --bands"
        elif len(indexes) > want:
            hint = (f"; pick {want} of them with --bands, e.g. --bands "
                    f"{','.join(str(i) for i in indexes[:want])}")
        elif extra and count == want:
            hint += (f", or pass --bands {','.join(str(i) for i in range(1, count + 1))} to "
                     "feed the alpha band as data")
        raise InputError(f"{path} has {len(indexes)} band(s){extra} but the checkpoint's "
                         f"{generator.direction} generator expects {want}{hint}")
    kinds = {str(np.dtype(dtypes[b - 1])) for b in indexes}
    if len(kinds) > 1:
        raise InputError(f"{path} mixes band dtypes ({', '.join(sorted(kinds))}); "
                         "convert it to one dtype first")
    dtype = kinds.pop()
    expected = str(np.dtype(generator.in_norm.dtype))
    if dtype != expected:
        raise InputError(f"{path} is {dtype} but the checkpoint's {generator.direction} generator "
                         f"was trained on {expected} rasters; convert it (e.g. gdal_translate "
                         f"-ot {_GDAL_TYPE_NAMES.get(expected, expected)} -scale) or use a "
                         "matching checkpoint")
    return indexes


def output_nodata(src_nodata: float | None, out_norm: BandNorm) -> float | None:
    """Nodata value of the output: None when the input has none, else one the dtype holds.

    The target domain's nodata is preferred, then the input's, then 0 / the
    dtype's minimum for integers and NaN for floats.
    """
    if src_nodata is None:
        return None
    dtype = np.dtype(out_norm.dtype)
    for candidate in (out_norm.nodata, src_nodata):
        if candidate is not None and _fits(float(candidate), dtype):
            return float(candidate)
    if np.issubdtype(dtype, np.floating):
        return float("nan")
    return float(np.iinfo(dtype).min)


def _fits(value: float, dtype: np.dtype) -> bool:
    if np.issubdtype(dtype, np.floating):
        return True
    if not math.isfinite(value) or value != int(value):
        return False
    info = np.iinfo(dtype)
    return info.min <= value <= info.max


def _open_input(path: str | os.PathLike[str]) -> Any:
    """Open an input raster; a plain picture (PNG/JPEG) may lack a georeference."""
    from geogan.rasterio_io import open_raster

    return open_raster(path, allow_no_crs=Path(os.fspath(path)).suffix.lower()
                       in PICTURE_DRIVERS)


def fit_tile(config: TranslateConfig, width: int, height: int, multiple: int) -> TranslateConfig:
    """``config`` with ``tile`` clamped to the raster (rounded up to ``multiple``).

    A window larger than the raster only adds mirrored padding: it costs time and memory
    and changes nothing for the better.
    """
    need = -(-max(width, height, 8) // multiple) * multiple
    if config.tile <= need:
        return config
    log.info("--tile %d is larger than the %dx%d px raster; using %d", config.tile, width,
             height, need)
    return dataclasses.replace(config, tile=need, overlap=min(config.overlap, need // 2))


def check_tile(generator: LoadedGenerator, tile: int) -> None:
    """Fail early when the generator cannot take ``tile``-pixel windows.

    Generators carry a ``size_multiple`` attribute (4 for ResNet, 256 for U-Net 256).
    """
    multiple = int(getattr(generator.module, "size_multiple", 1))
    if tile % multiple:
        spec = generator.meta.get("generators", {}).get(generator.direction, {})
        arch = spec.get("arch", "this") if isinstance(spec, dict) else "this"
        suggestion = max(multiple, round(tile / multiple) * multiple)
        raise InputError(f"--tile {tile} does not suit the {arch} generator; use a multiple of "
                         f"{multiple}, e.g. --tile {suggestion}")


# --------------------------------------------------------------------------- library entry points


def translate_files(checkpoint: str | os.PathLike[str],
                    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
                    output: str | os.PathLike[str], config: TranslateConfig | None = None,
                    progress: ProgressCallback | None = None,
                    cancel: CancelCheck | None = None, *, direction: str = "a2b") -> list[Path]:
    """Translate files, folders or globs with a checkpoint; return this rank's output paths.

    ``direction`` picks the checkpoint's generator (``a2b`` or ``b2a``).

    With several inputs ``output`` is a folder (see :func:`map_outputs`). Under
    torchrun the files are shared out round-robin across ranks (RANK,
    WORLD_SIZE) and each rank uses ``cuda:LOCAL_RANK``. Outputs that exist are an
    error unless ``config.overwrite``; with ``config.skip_existing`` they are left
    alone (and still returned), so an interrupted batch can be resumed. All
    outputs are checked before any work starts. ``progress`` gets megapixels done
    of the batch total, with ``file``, ``files`` (``i/n``), ``file_pct``, ``file_eta_s``
    and ``mpx_s`` figures.
    """
    config = config or TranslateConfig()
    if direction not in ("a2b", "b2a"):
        raise InputError(f"unknown --direction {direction!r}; choose a2b or b2a")
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    inputs = list(inputs)
    files = expand_inputs(inputs)
    outs = map_outputs(files, output)
    rank, world = rank_share()
    mine = list(zip(files, outs, strict=True))[rank::world]
    todo: list[tuple[Path, Path]] = []
    for src, dst in mine:
        if config.skip_existing and dst.exists():
            if not is_complete_raster(dst):
                raise OutputError(f"{dst} exists but is not a complete raster (left by an "
                                  "interrupted or failed write); delete it and run again")
            log.info("skipping %s: %s already exists", src, dst)
            continue
        check_output_file(dst, config.overwrite)
        if config.save_stats:
            check_output_file(stats_path_for(dst), config.overwrite)
        todo.append((src, dst))
    if world > 1:
        log.info("rank %d of %d: %d of %d file(s), %d to translate", rank, world, len(mine),
                 len(files), len(todo))
    if not todo:
        return [dst for _, dst in mine]
    check_cancel(cancel, "translation")
    with _torch_threads(config.threads):
        return _translate_todo(checkpoint, files, todo, mine, config, progress, cancel,
                               direction)


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """torch's CPU threads set to ``threads`` inside the block (unchanged when None)."""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _translate_todo(checkpoint: str | os.PathLike[str], files: list[Path],
                    todo: list[tuple[Path, Path]],
                    mine: list[tuple[Path, Path]], config: TranslateConfig,
                    progress: ProgressCallback | None, cancel: CancelCheck | None,
                    direction: str) -> list[Path]:
    device = resolve_device(config.device)
    generator = load_generator(checkpoint, direction, device)
    check_tile(generator, config.tile)
    sizes = [_inspect(src, generator, config) for src, _ in todo]
    shared = _batch_stats(generator, files, config, device, cancel)
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
    statistics are estimated from this raster first.
    """

    from geogan.rasterio_io import check_readable, gdal_env
    from geogan.rasterio_meta import check_pixels, data_bands, has_mask, read_meta
    from geogan.sink import atomic_raster, check_creation_options, num_threads, output_profile

    config = config or TranslateConfig()
    from geogan.inputs import GdalPath, as_input

    input_path, output_path = as_input(input_path), Path(output_path)
    what = f"translation of {input_path.name}"
    check_cancel(cancel, what)
    check_tile(generator, config.tile)
    if output_path.exists() and not isinstance(input_path, GdalPath) and input_path.exists() \
            and output_path.samefile(input_path):
        raise OutputError(f"output {output_path} would replace its input; choose another output")
    device = resolve_device(config.device)
    with gdal_env(GDAL_CACHEMAX=GDAL_CACHE_MB):
        with _open_input(input_path) as src:
            check_readable(src)
            check_pixels(src, input_path, config.bands or data_bands(src))
            indexes = select_input_bands(src.count, src.dtypes, input_path, generator,
                                         config.bands, data_bands(src))
            src_profile = dict(src.profile)
            src_nodata = src.nodata
            masked = has_mask(src, indexes)
            meta = output_meta(read_meta(src), indexes, src.dtypes[indexes[0] - 1], generator)
        config = fit_tile(config, int(src_profile["width"]), int(src_profile["height"]),
                          int(getattr(generator.module, "size_multiple", 1)))
        out_nodata = output_nodata(src_nodata, generator.out_norm)
        driver = PICTURE_DRIVERS.get(output_path.suffix.lower(), "GTiff")
        if driver != "GTiff" and config.cog:
            raise InputError(f"--cog writes GeoTIFF; give -o {output_path.stem}.tif or drop "
                             "--cog")
        profile = output_profile(src_profile, count=generator.out_bands,
                                 dtype=generator.out_norm.dtype, nodata=out_nodata,
                                 compress=config.compress, meta=meta,
                                 creation_options=config.creation_options
                                 if driver == "GTiff" and not config.cog else ())
        check_creation_options(profile, config.creation_options,
                               "COG" if config.cog else driver)
        profile["num_threads"] = num_threads(config.threads)
        norm_stats = _raster_stats(generator, input_path, indexes, src_profile, config, device,
                                   stats, cancel)
        job = _Job(generator, input_path, indexes, src_nodata, out_nodata, profile, config,
                   device, progress, cancel, meta=meta, masked=masked, norm_stats=norm_stats)
        itemsize = np.dtype(profile["dtype"]).itemsize
        check_free_space(output_path, job.width * job.height * generator.out_bands * itemsize,
                         certain=False)
        start = time.perf_counter()
        if src_profile.get("crs") is None:
            log.warning("%s has no georeference: %s has none either", input_path, output_path)
        with atomic_raster(output_path, overwrite=config.overwrite, cog=config.cog,
                           compress=config.compress, driver=driver,
                           creation_options=config.creation_options) as target:
            job.run(target, output_path)
            check_cancel(cancel, what)
            if config.save_stats and norm_stats is not None:
                norm_stats.save(stats_path_for(output_path), overwrite=config.overwrite)
        if src_nodata is not None and job.valid_pixels == 0:
            log.warning("%s holds only nodata pixels: %s is all nodata", input_path,
                        output_path)
    elapsed = time.perf_counter() - start
    mpx = profile["width"] * profile["height"] / 1e6
    log.info("translated %s -> %s: %.1f Mpx in %.1f s (%.2f Mpx/s)", input_path, output_path,
             mpx, elapsed, mpx / elapsed if elapsed else 0.0)
    return output_path


def resolve_precision(precision: str, device: str) -> str:
    """``--precision auto`` -> ``bf16`` on CUDA and on CPUs with native bf16, else ``fp32``.

    On the shipped NAIP model, bf16 stays within 0.2 DN (mean) of fp32 and runs 1.2x
    faster on an AVX512-BF16 CPU; without native bf16 it would be emulated and slower.
    """
    if precision != "auto":
        return precision
    if device.startswith("cuda") or devices.cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def _batch_stats(generator: LoadedGenerator, files: Sequence[Path], config: TranslateConfig,
                 device: str, cancel: CancelCheck | None) -> NormStats | None:
    """Statistics shared by every input: ``config.stats`` read and checked, or ``shared_stats``."""
    from geogan.normstats import check_stats, estimate_stats, load_stats

    if config.norm == "window":
        return None
    if config.stats:
        stats = load_stats(config.stats)
        check_stats(stats, generator, config.norm, f"statistics file {config.stats}")
        return stats
    if not config.shared_stats:
        return None
    indexes = []
    for path in files:
        with _open_input(path) as src:
            indexes.append(select_input_bands(src.count, src.dtypes, path, generator,
                                              config.bands))
    return estimate_stats(generator, files, "global", indexes, device=device,
                          precision=resolve_precision(config.precision, device), cancel=cancel)


def _raster_stats(generator: LoadedGenerator, path: Path, indexes: list[int],
                  src_profile: dict[str, Any], config: TranslateConfig, device: str,
                  given: NormStats | None, cancel: CancelCheck | None) -> NormStats | None:
    """The statistics one raster is translated with (None for ``--norm window``)."""
    from geogan.normstats import check_dense_fits, estimate_stats

    if config.norm == "window" or not normstats.norm_layers(generator.module):
        return None  # a generator without instance norm: nothing depends on the windows
    stats = given if given is not None else _batch_stats(generator, [path], config, device,
                                                         cancel)
    if stats is None:
        stats = estimate_stats(generator, [path], config.norm, [indexes], device=device,
                               precision=resolve_precision(config.precision, device),
                               cancel=cancel)
    if stats.mode == "dense":
        check_dense_fits(stats, int(src_profile["width"]), int(src_profile["height"]),
                         f"statistics file {config.stats}" if config.stats else str(path))
    return stats


def _inspect(path: Path, generator: LoadedGenerator, config: TranslateConfig) -> int:
    """Check an input against the generator before a batch starts; return its pixel count."""
    from geogan.rasterio_io import check_readable
    from geogan.rasterio_meta import check_pixels, data_bands

    with _open_input(path) as src:
        check_readable(src)
        check_pixels(src, path, config.bands or data_bands(src))
        select_input_bands(src.count, src.dtypes, path, generator, config.bands, data_bands(src))
        return int(src.width) * int(src.height)


def output_meta(src_meta: RasterMeta, indexes: Sequence[int], in_dtype: str,
                generator: LoadedGenerator) -> RasterMeta:
    """Band meaning of a translation: the fed bands' when the band count is kept.

    A generator that keeps the number of bands (NAIP 2009 -> NAIP 2020, RGB -> RGB)
    keeps each band's colour interpretation, description and tags; scale, offset
    and units too when the dtype is also kept (the values are in the same units).
    Otherwise the bands are new: RGB for three, gray then undefined for other
    counts. Dataset tags are kept either way.
    """
    from geogan.rasterio_meta import BandMeta, RasterMeta

    fed = src_meta.pick(indexes)
    if generator.out_bands != len(indexes):
        return RasterMeta.plain(generator.out_bands, fed.tags)
    if str(np.dtype(generator.out_norm.dtype)) == str(np.dtype(in_dtype)):
        return fed
    return RasterMeta(tuple(BandMeta(b.colorinterp, b.description, b.tags)
                            for b in fed.bands), fed.tags)


# --------------------------------------------------------------------------- the windowed engine


class _Stop(Exception):
    """A worker thread was told to stop because the job failed or was cancelled."""


class _Worker(threading.Thread):
    """A daemon thread that keeps the exception that ended it."""

    def __init__(self, name: str, target: Callable[[], None]) -> None:
        super().__init__(name=name, daemon=True)
        self._fn = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._fn()
        except _Stop:
            pass
        except BaseException as exc:  # handed to the caller's thread
            self.error = exc


def _put(q: queue.Queue[Any], item: Any, stop: threading.Event) -> None:
    while True:
        if stop.is_set():
            raise _Stop
        try:
            q.put(item, timeout=_POLL_S)
            return
        except queue.Full:
            continue


#: numpy dtype -> GDAL's type name (for gdal_translate -ot).
_GDAL_TYPE_NAMES = {"uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16",
                    "uint32": "UInt32", "int32": "Int32", "float32": "Float32",
                    "float64": "Float64"}

_TORCH_DTYPES = {"uint8": "uint8", "int8": "int8", "int16": "int16", "int32": "int32",
                 "float32": "float32", "float64": "float64", "uint16": "int32",
                 "uint32": "int64"}


class _Job:
    """One raster through reader thread -> generator (caller's thread) -> writer thread."""

    def __init__(self, generator: LoadedGenerator, input_path: Path, indexes: list[int],
                 src_nodata: float | None, out_nodata: float | None, profile: dict[str, Any],
                 config: TranslateConfig, device: str, progress: ProgressCallback | None,
                 cancel: CancelCheck | None, meta: RasterMeta | None = None,
                 masked: bool = False, norm_stats: NormStats | None = None) -> None:
        self.gen = generator
        self.meta = meta
        self.masked = masked  # the input has a per-dataset mask or alpha, not only nodata
        self.norm_stats = norm_stats
        self.input_path = input_path
        self.indexes = indexes
        self.src_nodata = src_nodata
        self.out_nodata = out_nodata
        self.profile = profile
        self.config = config
        self.device = device
        self.progress = progress
        self.cancel = cancel
        self.width = int(profile["width"])
        self.height = int(profile["height"])
        self.ax = AxisLayout(self.width, config.tile, config.overlap)
        self.ay = AxisLayout(self.height, config.tile, config.overlap)
        kind = "cuda" if device.startswith("cuda") else "cpu"
        self.batch_size = config.batch_size or AUTO_BATCH[kind]
        self.precision = resolve_precision(config.precision, device)
        self.what = f"translation of {input_path.name}"
        self.valid_pixels = 0  # counted by the reader where the input has nodata

    # ---------------------------------------------------------------- reader thread

    def _read(self, q: queue.Queue[Any], stop: threading.Event) -> None:
        """Read window rows, pad by reflection, cut windows into batches ``(B, C, T, T)``."""
        import torch
        from rasterio.errors import RasterioIOError
        from rasterio.windows import Window

        from geogan.rasterio_meta import read_valid

        ax, ay, t = self.ax, self.ay, self.config.tile
        pin = self.device.startswith("cuda")
        batch: list[np.ndarray] = []
        keys: list[tuple[int, int]] = []

        def emit() -> None:
            arr = np.stack(batch)  # (B, C, T, T)
            if self.config.compile and len(batch) < self.batch_size:  # static shapes
                arr = np.concatenate([arr, np.zeros((self.batch_size - len(batch),)
                                                    + arr.shape[1:], arr.dtype)])
            tensor = torch.from_numpy(arr)
            _put(q, ("batch", list(keys), tensor.pin_memory() if pin else tensor), stop)
            batch.clear()
            keys.clear()

        cols = [ax.source_index(c) for c in range(ax.count)]  # raster column of each pixel
        plain = [bool(np.array_equal(cx, np.arange(cx[0], cx[0] + t))) for cx in cols]
        with _open_input(self.input_path) as src:
            for r in range(ay.count):
                if stop.is_set():
                    raise _Stop
                rows = ay.source_index(r)  # raster row of each window row, mirrored at edges
                f0 = 0 if r == 0 else ay.start(r)  # rows finished once this row is done
                f1 = ay.final_end(r)
                a, b = min(int(rows.min()), f0), max(int(rows.max()) + 1, f1)
                try:
                    data = src.read(self.indexes, window=Window(0, a, self.width, b - a))
                except RasterioIOError as exc:
                    raise InputError(f"{self.input_path} could not be read at rows {a}-{b} "
                                     f"({first_line(exc)}); check that the "
                                     "file is complete") from exc
                mask = None
                if self.src_nodata is not None or self.masked:
                    try:
                        mask = read_valid(src, self.indexes, Window(0, f0, self.width, f1 - f0),
                                          data[:, f0 - a:f1 - a], self.src_nodata,
                                          self.masked)  # (rows, W)
                    except RasterioIOError as exc:
                        raise InputError(f"the mask of {self.input_path} could not be read at "
                                         f"rows {f0}-{f1} ({first_line(exc)}); check that the "
                                         "file is complete") from exc
                    if mask is not None:
                        self.valid_pixels += int(np.count_nonzero(mask))
                _put(q, ("rows", r, mask), stop)
                cast = _TORCH_DTYPES.get(str(data.dtype), "float32")
                if cast != str(data.dtype):
                    data = data.astype(cast)
                ry = rows - a
                if np.array_equal(ry, np.arange(ry[0], ry[0] + t)):
                    strip = data[:, ry[0]:ry[0] + t]  # (C, T, W), a view
                else:
                    strip = data[:, ry]  # edge rows: mirrored copy
                for c, cx in enumerate(cols):
                    if plain[c]:
                        batch.append(strip[:, :, cx[0]:cx[0] + t])
                    else:
                        batch.append(strip[:, :, cx])  # edge columns: mirrored copy
                    keys.append((r, c))
                    if len(batch) == self.batch_size:
                        emit()
                del data, strip
        if batch:
            emit()
        _put(q, ("end",), stop)

    # ---------------------------------------------------------------- writer thread

    def _write(self, path: Path, final: Path, q: queue.Queue[Any],
               stop: threading.Event) -> None:
        """Apply nodata and write finished rows in block-aligned chunks into ``path``."""
        from rasterio.windows import Window

        from geogan.rasterio_meta import write_meta
        from geogan.sink import BLOCK_SIZE, open_for_write

        buf: np.ndarray | None = None  # (C, BLOCK_SIZE + tile, W): rows waiting for a block
        # (BLOCK_SIZE + tile, W): validity of those rows, kept when written as an internal mask
        valid_buf: np.ndarray | None = None
        buf_start = 0  # raster row of buf[:, 0]
        filled = 0

        def flush(dst: Any, final: bool) -> None:
            nonlocal buf_start, filled
            assert buf is not None
            n = filled if final else (filled // BLOCK_SIZE) * BLOCK_SIZE
            if n == 0:
                return
            dst.write(buf[:, :n], window=Window(0, buf_start, self.width, n))
            rest = filled - n
            buf[:, :rest] = buf[:, n:filled]  # rest < BLOCK_SIZE <= n: no overlap
            if valid_buf is not None:
                dst.write_mask(valid_buf[:n], window=Window(0, buf_start, self.width, n))
                valid_buf[:rest] = valid_buf[n:filled]
            buf_start += n
            filled = rest

        with open_for_write(path, self.profile, final) as dst:
            if self.meta is not None:
                write_meta(dst, self.meta)
            while True:
                try:
                    item = q.get(timeout=_POLL_S)
                except queue.Empty:
                    if stop.is_set():
                        raise _Stop from None
                    continue
                if item[0] == "end":
                    if buf is not None:
                        flush(dst, final=True)
                    break
                _, f0, rows, mask = item
                if f0 != buf_start + filled:
                    raise RuntimeError(f"rows {f0} arrived out of order")
                if buf is None:
                    buf = np.empty((rows.shape[0], BLOCK_SIZE + self.config.tile,
                                    self.width), dtype=rows.dtype)
                n = rows.shape[1]
                buf[:, filled:filled + n] = self._apply_nodata(rows, mask)
                if mask is not None and self.out_nodata is None:  # masked in -> masked out
                    if valid_buf is None:
                        valid_buf = np.empty(buf.shape[1:], dtype=np.uint8)
                    valid_buf[filled:filled + n] = np.where(mask, 255, 0)
                filled += n
                flush(dst, final=False)
                if stop.is_set():
                    raise _Stop

    def _apply_nodata(self, rows: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """Output nodata where the input is nodata; nudge valid pixels that would read as nodata."""
        nd = self.out_nodata
        if mask is None or nd is None:
            return rows
        if not math.isnan(nd):
            clash = mask & (rows == rows.dtype.type(nd)).all(axis=0)
            if clash.any():
                rows[0][clash] = _nudge(nd, rows.dtype)
        rows[:, ~mask] = nd
        return rows

    # ---------------------------------------------------------------- caller's thread

    def run(self, path: Path, final: Path | None = None) -> None:
        """Translate into ``path`` (a new GeoTIFF; ``final`` names it in errors)."""
        import torch

        stop = threading.Event()
        in_q: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_DEPTH)
        out_q: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_DEPTH)
        reader = _Worker("geogan-reader", lambda: self._read(in_q, stop))
        writer = _Worker("geogan-writer", lambda: self._write(path, final or path, out_q, stop))
        log.debug("%s: %dx%d px, %dx%d windows of %d px, overlap %d, batch %d, %s %s",
                  self.input_path, self.width, self.height, self.ax.count, self.ay.count,
                  self.config.tile, self.config.overlap, self.batch_size, self.device,
                  self.precision)
        reader.start()
        writer.start()
        try:
            with torch.inference_mode():
                self._infer(in_q, out_q, reader, writer)
            _put_checked(out_q, ("end",), writer, self.cancel, self.what)
            while writer.is_alive():
                writer.join(_POLL_S)
            if writer.error is not None:
                raise writer.error
        except BaseException:
            stop.set()
            raise
        finally:
            stop.set()
            reader.join()
            writer.join()

    def _infer(self, in_q: queue.Queue[Any], out_q: queue.Queue[Any], reader: _Worker,
               writer: _Worker) -> None:
        import torch

        ax, ay, t, dev = self.ax, self.ay, self.config.tile, self.device
        gen = self.gen
        norm = None  # instance norm with given statistics (--norm global|dense)
        if self.norm_stats is not None:
            norm = normstats.prepared_for(gen.module)
            norm.load(self.norm_stats, dev)
        dense = norm is not None and self.norm_stats is not None and self.norm_stats.mode == "dense"
        module = _prepare_module(norm.module if norm else gen.module, dev, self.config.compile)
        w1 = blend_weights(t, self.config.overlap, self.config.blend)
        w2 = torch.from_numpy(np.outer(w1, w1).astype(np.float32)).to(dev)  # (T, T)
        inv_wx = torch.from_numpy((1.0 / ax.weight_totals(w1)).astype(np.float32)).to(dev)
        inv_wy = (1.0 / ay.weight_totals(w1)).astype(np.float32)  # (H,)
        in_lo, in_span = _norm_tensors(gen.in_norm, dev)
        out_lo, out_span = _norm_tensors(gen.out_norm, dev)
        out_dtype = np.dtype(gen.out_norm.dtype)
        c_out = gen.out_bands
        acc = torch.zeros((c_out, t, self.width), dtype=torch.float32, device=dev)  # (C, T, W)
        autocast = (torch.autocast(device_type="cuda" if dev.startswith("cuda") else "cpu",
                                   dtype=torch.bfloat16)
                    if self.precision == "bf16" else contextlib.nullcontext())
        channels_last = dev.startswith("cuda")
        masks: dict[int, np.ndarray | None] = {}
        total_windows = ax.count * ay.count
        total_mpx = self.width * self.height / 1e6
        done_windows = 0
        current = 0  # window row being accumulated
        started = time.perf_counter()

        def finish_row(r: int) -> None:
            y0 = ay.start(r)
            f0 = 0 if r == 0 else y0
            f1 = ay.final_end(r)
            wy = torch.from_numpy(inv_wy[f0:f1]).to(dev)[None, :, None]  # (1, rows, 1)
            rows = np.empty((c_out, f1 - f0, self.width), dtype=out_dtype)
            for c0 in range(0, self.width, _FINISH_COLUMNS):  # bounded temporaries
                c1 = min(c0 + _FINISH_COLUMNS, self.width)
                y = acc[:, f0 - y0:f1 - y0, c0:c1] * wy  # (C, rows, cols), a new tensor
                y.mul_(inv_wx[None, None, c0:c1])
                rows[:, :, c0:c1] = _from_model(y, out_lo, out_span, out_dtype)
            _put_checked(out_q, ("rows", f0, rows, masks.pop(r)), writer, self.cancel,
                         self.what)
            if r < ay.count - 1:
                ov = self.config.overlap
                if ov:
                    acc[:, :ov] = acc[:, ay.stride:].clone()
                acc[:, ov:] = 0.0

        while True:
            item = _get_checked(in_q, reader, self.cancel, self.what)
            if item[0] == "rows":
                masks[item[1]] = item[2]
                continue
            if item[0] == "end":
                finish_row(current)
                return
            _, keys, raw = item
            n = len(keys)
            x = raw.to(dev, non_blocking=True).to(torch.float32)
            x = ((x - in_lo) / in_span * 2.0 - 1.0).clamp_(-1.0, 1.0)
            x = torch.nan_to_num_(x, nan=0.0)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if dense:
                assert norm is not None
                origins = [(ay.start(r), ax.start(c)) for r, c in keys]
                norm.set_windows(origins + origins[-1:] * (x.shape[0] - n), t)
            with autocast:
                y = module(x)
            y = y[:n].float()
            if tuple(y.shape) != (n, c_out, t, t):
                raise CheckpointError(f"the {gen.direction} generator turned windows of "
                                      f"{tuple(x.shape[1:])} into {tuple(y.shape[1:])}, expected "
                                      f"{(c_out, t, t)}; try another --tile")
            if not bool(torch.isfinite(y).all()):
                raise CheckpointError(f"the {gen.direction} generator produced NaN or infinite "
                                      f"values on {self.input_path.name}; nothing was written "
                                      "(the checkpoint's weights may be broken: use another "
                                      "checkpoint" + ("" if self.precision == "fp32" else
                                                      ", or try --precision fp32") + ")")
            y = y.clamp_(-1.0, 1.0).mul_(w2)  # (n, C, T, T)
            for i, (r, c) in enumerate(keys):
                while r != current:
                    finish_row(current)
                    current += 1
                x0 = ax.start(c)
                a, b = max(x0, 0), min(x0 + t, self.width)
                acc[:, :, a:b] += y[i, :, :, a - x0:b - x0]
            done_windows += n
            check_cancel(self.cancel, self.what)
            if self.progress is not None:
                done = total_mpx * done_windows / total_windows
                elapsed = time.perf_counter() - started
                self.progress(done, total_mpx, mpx_s=done / elapsed if elapsed else 0.0)


def _get_checked(q: queue.Queue[Any], worker: _Worker, cancel: CancelCheck | None,
                 what: str) -> Any:
    """Next item from a worker's queue, raising its error or the caller's cancel meanwhile."""
    while True:
        check_cancel(cancel, what)
        try:
            return q.get(timeout=_POLL_S)
        except queue.Empty:
            if not worker.is_alive() and q.empty():
                if worker.error is not None:
                    raise worker.error from None
                raise GeoganError(f"{what}: the {worker.name} thread stopped "
                                  "unexpectedly") from None


def _put_checked(q: queue.Queue[Any], item: Any, worker: _Worker, cancel: CancelCheck | None,
                 what: str) -> None:
    """Hand an item to a worker's queue, raising its error or the caller's cancel meanwhile."""
    while True:
        check_cancel(cancel, what)
        if not worker.is_alive():
            if worker.error is not None:
                raise worker.error
            raise GeoganError(f"{what}: the {worker.name} thread stopped unexpectedly")
        try:
            q.put(item, timeout=_POLL_S)
            return
        except queue.Full:
            continue


_COMPILED: dict[int, Any] = {}


def _prepare_module(module: Any, device: str, compile_: bool) -> Any:
    """Put the generator on ``device`` in eval mode; optionally ``torch.compile`` it once."""
    import torch

    module.eval()
    module.to(device)
    if device.startswith("cuda"):
        module.to(memory_format=torch.channels_last)
    if not compile_:
        return module
    key = id(module)
    if key not in _COMPILED:
        _COMPILED.clear()
        _COMPILED[key] = torch.compile(module)
    return _COMPILED[key]


def _norm_tensors(norm: BandNorm, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``lo`` and ``hi - lo`` shaped ``(1, C, 1, 1)`` on ``device`` (float32)."""
    import torch

    lo = np.asarray(norm.lo, dtype=np.float32)
    hi = np.asarray(norm.hi, dtype=np.float32)
    return (torch.from_numpy(lo).view(1, -1, 1, 1).to(device),
            torch.from_numpy(hi - lo).view(1, -1, 1, 1).to(device))


def _from_model(y: torch.Tensor, lo: torch.Tensor, span: torch.Tensor,
                dtype: np.dtype) -> np.ndarray:
    """Blended ``[-1, 1]`` values ``(C, rows, W)`` -> raster values, as BandNorm.from_model.

    Works in place on ``y``.
    """
    import torch

    x = y.clamp_(-1.0, 1.0).add_(1.0).mul_(0.5).mul_(span[0]).add_(lo[0])
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        x = x.round_().clamp_(float(info.min), float(info.max))
        x = x.to(getattr(torch, _TORCH_DTYPES.get(str(dtype), "int64")))
    elif dtype == np.float64:
        x = x.to(torch.float64)
    out = x.cpu().numpy()
    return out if out.dtype == dtype else out.astype(dtype)


def _nudge(nodata: float, dtype: np.dtype) -> Any:
    """The nearest value to ``nodata`` that is not ``nodata``, in ``dtype``."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return dtype.type(nodata + 1 if nodata < info.max else nodata - 1)
    return np.nextafter(dtype.type(nodata), dtype.type(np.inf))
