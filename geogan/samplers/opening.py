"""Opening rasters (or chip folders) as training data: the domains planned, the windows
scanned before training for statistics and previews, the epoch's length set."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geogan.contract.layouts import Layout, Pairing
from geogan.datasets import (
    DEFAULT_CACHE_MB,
    DIRECTIONS,
    Domain,
    TrainingData,
    open_training_data,
)
from geogan.errors import InputError
from geogan.models.registry import data_pairing
from geogan.normalize import BandNorm
from geogan.samplers.config import WindowConfig
from geogan.samplers.dataset import RasterWindowDataset
from geogan.samplers.expand import as_inputs, expand_rasters, is_chip_folder
from geogan.samplers.sampler import RASTER_ROUNDS, TRIES_PER_RASTER, Window, WindowSampler
from geogan.samplers.scenes import (
    _open_scenes,
    _pair_nodata,
    _pair_partners,
    _sources,
    check_crop,
    scenes_ground,
)
from geogan.stack import stack_record, stacked_inputs

log = logging.getLogger(__name__)

#: Windows per domain that feed the normalisation statistics (and the previews).
STAT_WINDOWS = 64
#: Seed of the windows drawn before training (statistics, previews, fallbacks).
SCAN_SEED = 20240
#: Layouts of raster training data, as stored in the checkpoint's ``training.layout``.
LAYOUTS = (Layout.RASTER_WINDOWS, Layout.PAIRED_RASTER_WINDOWS)


def scan_windows(sampler: WindowSampler, option: str, windows: WindowConfig, crop: int,
                 n: int = STAT_WINDOWS) -> list[tuple[list[np.ndarray], list[np.ndarray]]]:
    """Draw up to ``n`` accepted windows before training (statistics, previews, fallback).

    Raises :class:`InputError` when no window of the domain passes the filters.
    """
    rng = np.random.default_rng(SCAN_SEED)
    found: list[tuple[list[np.ndarray], list[np.ndarray]]] = []
    wins: list[Window] = []
    misses = 0
    while len(found) < n and misses < 3:
        got = sampler.try_draw(rng)
        if got is None:
            misses += 1
            continue
        wins.append(got[0])
        found.append((got[1], got[2]))
    if not found:
        aoi, aoi_option = windows.aoi_for("a" if option == "`a`" else "b")
        where = f" inside {aoi_option} {aoi}" if aoi is not None else ""
        raise InputError(f"{option}: no {crop} px window{where} passes `max_nodata` "
                         f"{windows.max_nodata:g} and `min_std` {windows.min_std:g} (after "
                         f"{3 * RASTER_ROUNDS * TRIES_PER_RASTER} tries); loosen them or pass "
                         "a smaller `crop`")
    sampler.fallback = tuple(wins)
    if len(found) < n:
        log.warning("%s: only %d of %d windows drawn before training passed the filters; "
                    "most of the rasters are nodata or near constant", option, len(found), n)
    return found


def _name(paths: Sequence[Path]) -> str:
    if len(paths) == 1:
        return paths[0].stem
    parents = {p.parent.resolve() for p in paths}
    return next(iter(parents)).name if len(parents) == 1 else paths[0].stem


def _norm(found: Sequence[tuple[list[np.ndarray], list[np.ndarray]]], side: int, dtype: str,
          nodata: float | None, given: BandNorm | None, option: str, bands: int) -> BandNorm:
    if given is not None:
        if given.bands != bands or given.dtype != dtype:
            raise InputError(f"rasters of {option} have {bands} {dtype} bands but the run was "
                             f"trained on {given.bands} {given.dtype} bands; give the same data")
        return given
    return BandNorm.from_samples(((chips[side], valids[side]) for chips, valids in found),
                                 dtype, nodata)


@dataclass
class _Domains:
    """What opening the rasters found: a sampler per domain (B's is None for pairs, read
    over A's windows), each domain's ground, bands, dtype and nodata."""

    sampler_a: WindowSampler
    sampler_b: WindowSampler | None
    ground_a: Any
    ground_b: Any
    view_a: tuple[int, str, float | None]
    view_b: tuple[int, str, float | None]


def _open_domains(pairing: Pairing, paths_a: list[Path], paths_b: list[Path], crop: int,
                  windows: WindowConfig) -> _Domains:
    """Open and check every raster, and make the window samplers of ``pairing``."""
    tile_cfg = windows.tile_config()
    aoi_a, opt_a = windows.aoi_for("a")
    aoi_b, opt_b = windows.aoi_for("b")
    with contextlib.ExitStack() as stack:
        scenes_a = _open_scenes(paths_a, "`a`", windows, aoi_a, opt_a, stack)
        check_crop(scenes_a, crop, "`a`")
        ground_a = ground_b = scenes_ground(scenes_a, "`a`")  # paired: B on A's grid
        if pairing is Pairing.PAIRED:
            if windows.aoi_b is not None:
                raise InputError("pix2pix windows are read from B over A's footprint; limit "
                                 "them with `aoi` or `aoi_a`, not `aoi_b`")
            partners = _pair_partners(scenes_a, paths_b, windows, stack)
            sampler_a = WindowSampler(_sources(scenes_a, "`a`", aoi_a, opt_a, partners), crop,
                                      tile_cfg, windows.max_nodata, windows.min_std)
            sampler_b = None
            view_b = _pair_nodata(paths_b, scenes_a, partners, windows, stack)
        else:
            scenes_b = _open_scenes(paths_b, "`b`", windows, aoi_b, opt_b, stack)
            check_crop(scenes_b, crop, "`b`")
            ground_b = scenes_ground(scenes_b, "`b`")
            sampler_a = WindowSampler(_sources(scenes_a, "`a`", aoi_a, opt_a), crop, tile_cfg,
                                      windows.max_nodata, windows.min_std)
            sampler_b = WindowSampler(_sources(scenes_b, "`b`", aoi_b, opt_b), crop, tile_cfg,
                                      windows.max_nodata, windows.min_std)
            first_b = scenes_b[0].view
            view_b = (len(first_b.bands), first_b.dtype, first_b.nodata)
    first_a = scenes_a[0].view
    return _Domains(sampler_a, sampler_b, ground_a, ground_b,
                    (len(first_a.bands), first_a.dtype, first_a.nodata), view_b)


def _raster_paths(model: str, a: Sequence[Path | str], b: Sequence[Path | str],
                  crop: int) -> tuple[list[Path], list[Path]]:
    if crop < 1:
        raise InputError(f"`crop` must be positive, got {crop}")
    paths_a = expand_rasters(a, "`a`")
    if not b:
        raise InputError(f"{model} needs rasters of both domains: pass `b` as well")
    paths_b = expand_rasters(b, "`b`")
    for pa in paths_a:
        if any(pa.resolve() == pb.resolve() for pb in paths_b):
            raise InputError(f"{pa} is given as both `a` and `b`; give each domain its own "
                             "rasters")
    return paths_a, paths_b


def open_raster_data(model: str, a: Sequence[Path | str], b: Sequence[Path | str], crop: int,
                     windows: WindowConfig, *, augment: bool = True, name_a: str | None = None,
                     name_b: str | None = None,
                     norms: tuple[BandNorm, BandNorm] | None = None,
                     min_length: int = 1) -> TrainingData:
    """Plan random-window training on rasters ``a`` and ``b`` (files, globs, ``@LIST``)
    for ``model`` (a model name, or the :class:`~geogan.contract.layouts.Pairing` it needs).

    Every raster is opened and checked, sources weighted, a sample of windows drawn
    (normalisation statistics unless ``norms`` is given, previews) and the epoch
    length set to ``ceil(valid pixels / crop**2)`` windows (of A for a paired model, the
    larger domain for an unpaired one), at least ``min_length``. Raises
    :class:`InputError` for rasters of different band counts or dtypes in one domain, a
    domain with no valid window, and paired rasters that do not overlap.
    """
    paths_a, paths_b = _raster_paths(model, a, b, crop)
    default_a, default_b = _name(paths_a), _name(paths_b)
    folder_a, folder_b = paths_a[0].parent, paths_b[0].parent
    paths_a, layers_a = stacked_inputs(paths_a, windows.a_stack, "`a_stack`",
                                       windows.resampling)
    paths_b, layers_b = stacked_inputs(paths_b, windows.b_stack, "`b_stack`",
                                       windows.resampling)
    pairing = data_pairing(model)
    d = _open_domains(pairing, paths_a, paths_b, crop, windows)
    (bands_a, dtype_a, nodata_a), (bands_b, dtype_b, nodata_b) = d.view_a, d.view_b
    sampler_a, sampler_b = d.sampler_a, d.sampler_b

    found_a = scan_windows(sampler_a, "`a`", windows, crop)
    found_b = found_a if sampler_b is None else scan_windows(sampler_b, "`b`", windows, crop)
    norm_a = _norm(found_a, 0, dtype_a, nodata_a, norms[0] if norms else None, "`a`", bands_a)
    norm_b = _norm(found_b, 1 if sampler_b is None else 0, dtype_b, nodata_b,
                   norms[1] if norms else None, "`b`", bands_b)

    valid = sampler_a.valid_px if sampler_b is None else max(sampler_a.valid_px,
                                                             sampler_b.valid_px)
    length = max(math.ceil(valid / crop ** 2), min_length)
    if default_a == default_b:
        default_a, default_b = "A", "B"
    dom_a = Domain(name_a or default_a, folder_a, tuple(paths_a), bands_a, dtype_a,
                   nodata_a, norm_a, min_size=crop, gsd_m=d.ground_a.gsd_m, crs=d.ground_a.crs,
                   stack=stack_record(layers_a) if layers_a else None)
    dom_b = Domain(name_b or default_b, folder_b, tuple(paths_b), bands_b, dtype_b,
                   nodata_b, norm_b, min_size=crop, gsd_m=d.ground_b.gsd_m, crs=d.ground_b.crs,
                   stack=stack_record(layers_b) if layers_b else None)
    dataset = RasterWindowDataset(sampler_a, sampler_b, norm_a, norm_b, crop, length, augment)
    for sampler in (sampler_a, sampler_b):
        if sampler is not None:
            sampler.close()  # reopened lazily by whichever process reads next
    log.info("training data: random %d px windows from %d raster(s) of %s (%d bands %s) and "
             "%d of %s (%d bands %s), %s; an epoch is %d windows (%.3g valid Mpx / crop^2)",
             crop, len(paths_a), dom_a.name, bands_a, dtype_a, len(paths_b), dom_b.name,
             bands_b, dtype_b, "paired by ground" if sampler_b is None else "unpaired", length,
             valid / 1e6)
    return TrainingData(dataset, dom_a, dom_b,  # type: ignore[arg-type]
                        Layout.raster_windows(pairing))


def open_inputs(model: str, a: Any, b: Any, crop: int, *, windows: WindowConfig | None = None,
                augment: bool = True, name_a: str | None = None, name_b: str | None = None,
                norms: tuple[BandNorm, BandNorm] | None = None,
                cache_mb: float = DEFAULT_CACHE_MB, min_length: int = 1,
                direction: str = DIRECTIONS[0]) -> TrainingData:
    """Chips (folders, as :func:`geogan.datasets.open_training_data` reads them) or rasters.

    The rule: ``--a``/``--b`` given as one folder each are chip folders, read exactly as
    before (pix2pix also takes several folders); files, globs, VRTs and ``@LIST`` files
    are rasters sampled in random windows (:func:`open_raster_data`). Mixing a folder
    and rasters is an error. ``direction`` "BtoA" (pix2pix) swaps the domains: the model
    translates B to A, and ``name_a``/``norms[0]`` are those of its domain A.
    """
    windows = windows or WindowConfig()
    ins_a, ins_b = as_inputs(a), as_inputs(b)
    if not ins_a:
        raise InputError("`a` is required: a folder of chips, or rasters (files or globs)")
    for option, given in (("`a`", ins_a), ("`b`", ins_b)):
        for p in given:
            text = str(p)
            if not p.exists() and not text.startswith("@") \
                    and not any(ch in text for ch in "*?["):
                raise InputError(f"{option} {p} does not exist; check the path")
    folders = [p for p in (*ins_a, *ins_b) if is_chip_folder(p)]
    if folders and len(folders) == len(ins_a) + len(ins_b):
        if not windows.is_default:
            raise InputError(f"{', '.join(windows.given())} apply to rasters; the chip folder "
                             f"{folders[0]} was filtered when it was tiled (pass rasters, or "
                             "drop those options)")
        return open_training_data(model, ins_a, ins_b or None, crop, augment=augment,
                                  name_a=name_a, name_b=name_b, norms=norms,
                                  cache_mb=cache_mb, direction=direction)
    if folders:
        raise InputError(f"{folders[0]} is a folder (read as chips) among other inputs; pass "
                         "either one chip folder per domain or rasters (files or globs such "
                         f"as {folders[0] / '*.tif'})")
    if direction == "BtoA":  # the model translates B to A: the B rasters are its domain A
        if not ins_b:
            raise InputError(f"{model} needs rasters of both domains: pass `b` as well")
        ins_a, ins_b = ins_b, ins_a
        windows = dataclasses.replace(windows, a_stack=windows.b_stack, b_stack=windows.a_stack)
        log.info("direction BtoA: the model's domain A is the `b` rasters, B the `a` rasters")
    return open_raster_data(model, ins_a, ins_b, crop, windows, augment=augment,
                            name_a=name_a, name_b=name_b, norms=norms, min_length=min_length)
