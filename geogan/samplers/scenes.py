"""Training straight from orthophotos: random georeferenced windows, no chips written.

``geogan train --a 2009/*.tif --b 2020/*.tif`` reads its samples from the rasters
themselves. Each sample is a ``crop x crop`` window drawn at random over the valid
ground of a domain:

1. a raster is picked with probability proportional to its valid pixels (inside the
   AOI; estimated once from a decimated read of its mask), so the ground is sampled
   by area, not by file;
2. a window position is drawn uniformly where windows may lie in that raster (its
   grid, cut to the AOI's bounding box and, for pairs, to the overlap with B);
3. the window is read (a windowed read, padded with nodata where it hangs over the
   raster's edge) and rejected, and another position drawn, when it leaves the AOI
   polygons, has a nodata fraction over ``--max-nodata`` or is near constant
   (``--min-std``): the rule of ``geogan tile`` (:func:`geogan.tiling.rejection`)
   with validity from the mask API (:func:`geogan.rasterio_meta.read_valid`).

A window must lie wholly inside the AOI (``geogan tile --aoi`` keeps chips that only
touch it), so ground outside it is never trained on.

Pairs (pix2pix): each A window is read from B over the same footprint on A's grid,
B resampled as ``geogan tile --pair`` does (:func:`geogan.tiling.pair_view`). Every A
raster is paired with every B raster it overlaps; rasters without a partner are
reported and left out.

Harmonisation (``--crs/--res`` or ``--align-to``) reads every raster through the
warped view of ``geogan tile``, so both domains have one ground resolution.

Randomness: sample ``i`` of the epoch draws everything (raster, position, retries,
flips) from the seed :class:`geogan.datasets.EpochSampler` gives it, a function of
the run seed, the epoch and the sample's global position only. So the windows are
the same whatever the number of loader workers, a resumed run continues the same
sequence (the position is in the train state), and each DDP rank draws its own.

Rasters are opened lazily in each process that reads (DataLoader workers included):
a sampler carries paths and grid settings, never an open dataset, across a fork.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import math
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from geogan.datasets import (
    DEFAULT_CACHE_MB,
    PICTURE_SUFFIXES,
    Domain,
    TrainingData,
    apply_augment,
    draw_augment,
    open_training_data,
)
from geogan.errors import InputError, first_line
from geogan.normalize import BandNorm, valid_mask

log = logging.getLogger(__name__)

#: Windows per domain that feed the normalisation statistics (and the previews).
STAT_WINDOWS = 64
#: Positions tried in one raster before another raster is drawn, and rasters tried.
TRIES_PER_RASTER = 16
RASTER_ROUNDS = 8
#: Side of the decimated mask read that estimates a raster's valid pixels.
ESTIMATE_SIDE = 512
#: Seed of the windows drawn before training (statistics, previews, fallbacks).
SCAN_SEED = 20240
#: Layouts of raster training data, as stored in the checkpoint's ``training.layout``.
LAYOUTS = ("raster_windows", "paired_raster_windows")
#: File suffixes read as rasters (files and globs); anything GDAL opens also works as a file.
RASTER_INPUT_SUFFIXES = (".tif", ".tiff", ".vrt", ".img", ".jp2")

_EDGE = 1e-6  # px: a window edge on the AOI boundary is inside it


@dataclass(frozen=True)
class WindowConfig:
    """How windows are drawn from rasters (``geogan train`` options for raster inputs).

    ``aoi`` limits both domains, ``aoi_a``/``aoi_b`` one each. ``max_nodata``/
    ``min_std``, ``crs``/``res``/``align_to`` and ``resampling`` mean what they mean
    for ``geogan tile``. Chip folders ignore none of this silently: giving any of it
    with chips is an error (they were filtered when tiled).
    """

    aoi: Path | None = None
    aoi_a: Path | None = None
    aoi_b: Path | None = None
    max_nodata: float = 0.0
    min_std: float = 0.0
    crs: str | None = None
    res: float | None = None
    align_to: Path | None = None
    resampling: str = "bilinear"

    def __post_init__(self) -> None:
        for name in ("aoi", "aoi_a", "aoi_b", "align_to"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        if self.aoi is not None and (self.aoi_a is not None or self.aoi_b is not None):
            raise InputError("--aoi limits both domains; do not combine it with "
                             "--aoi-a/--aoi-b")
        self.tile_config()  # the tile options' own checks, with tile's messages

    @property
    def is_default(self) -> bool:
        return self == WindowConfig()

    def given(self) -> list[str]:
        """The options set to something else than their default, as ``--name``."""
        default = WindowConfig()
        return [f"--{f.name.replace('_', '-')}" for f in fields(self)
                if getattr(self, f.name) != getattr(default, f.name)]

    def aoi_for(self, domain: str) -> tuple[Path | None, str]:
        """The AOI of domain ``"a"`` or ``"b"`` and the option that gave it."""
        own = self.aoi_a if domain == "a" else self.aoi_b
        if own is not None:
            return own, f"--aoi-{domain}"
        return self.aoi, "--aoi"

    def tile_config(self) -> Any:
        """The :class:`geogan.tiling.TileConfig` whose views and filters the windows share."""
        from geogan.tiling import TileConfig

        return TileConfig(max_nodata=self.max_nodata, min_std=self.min_std, crs=self.crs,
                          res=self.res, align_to=self.align_to, resampling=self.resampling)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = str(Path(value).absolute()) if isinstance(value, Path) else value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> WindowConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in names})


# -- which inputs are chips and which are rasters -----------------------------------------

def is_chip_folder(path: Path) -> bool:
    """Whether ``--a``/``--b`` ``path`` is read as chips (exactly as before rasters came).

    A folder is chips: the output of ``geogan tile`` (``index.gpkg``, chip-named files,
    ``A/``/``B/``), a folder of PNG/JPEG images, or any other folder of GeoTIFFs.
    Rasters are given as files, globs (``"2009/*.tif"``), VRTs or a list file.
    """
    return Path(path).is_dir()


def expand_rasters(items: Iterable[str | os.PathLike[str]], option: str) -> list[Path]:
    """Raster files, globs (expanded, sorted) and ``@LIST`` files -> existing files, in order.

    ``@list.txt`` reads one path or glob per line (blank lines and ``#`` comments
    skipped). Duplicates are dropped.
    """
    files: list[Path] = []
    for item in items:
        text = str(item)
        if text.startswith("@"):
            files.extend(expand_rasters(_read_list(Path(text[1:]), option), option))
            continue
        p = Path(text)
        if p.is_dir():
            raise InputError(f"{option} {p} is a folder, which is read as chips; to train from "
                             f"the rasters in it, pass {p / '*.tif'} (a glob) or the files")
        if p.exists():
            files.append(p)
        elif any(ch in text for ch in "*?["):
            found = sorted(Path(f) for f in glob.glob(text, recursive=True) if Path(f).is_file()
                           and Path(f).suffix.lower() not in PICTURE_SUFFIXES)
            if not found:
                raise InputError(f"{option}: no files match {text}; check the pattern")
            files.extend(found)
        else:
            raise InputError(f"{option} {p} does not exist; check the path")
    seen: set[Path] = set()
    unique = []
    for f in files:
        if f.resolve() not in seen:
            seen.add(f.resolve())
            unique.append(f)
    return unique


def _read_list(path: Path, option: str) -> list[str]:
    from geogan.inputs import read_files_from

    return read_files_from(path, f"{option} list", relative_to_list=True)


def as_inputs(value: Path | str | Sequence[Path | str] | None) -> tuple[Path, ...]:
    """A config's ``a``/``b`` (one path or several) as a tuple of paths."""
    if value is None:
        return ()
    if isinstance(value, (str, os.PathLike)):
        return (Path(value),)
    return tuple(Path(v) for v in value)


# -- sources: one raster (and its pair) with where windows may lie ------------------------

@dataclass(frozen=True)
class WindowSource:
    """One raster of a domain as the sampler sees it (picklable: no open dataset).

    ``region`` (col, row, width, height) is the part of the raster's grid windows are
    drawn in; ``aoi_wkb`` the AOI in pixel coordinates of that grid (None: no AOI);
    ``valid_px`` the estimated valid pixels inside both, the raster's weight.
    """

    path: Path
    pair: Path | None
    region: tuple[int, int, int, int]
    aoi_wkb: bytes | None
    valid_px: int


@dataclass(frozen=True)
class Window:
    """A drawn window: the source's index and the window's top-left pixel on its grid."""

    source: int
    col: int
    row: int


class _Opened:
    """The views of a sampler's sources, opened in one process, each on first use."""

    def __init__(self, sampler: WindowSampler) -> None:
        self.pid = os.getpid()
        self.sampler = sampler
        self.stack = contextlib.ExitStack()
        self.views: dict[int, tuple[Any, Any]] = {}
        self.aois: dict[int, Any] = {}

    def view(self, i: int) -> tuple[Any, Any]:
        """``(view, pair view or None)`` of source ``i``."""
        if i not in self.views:
            import shapely

            from geogan.tiling import open_view, pair_view

            src = self.sampler.sources[i]
            cfg = self.sampler.tile_config
            with contextlib.ExitStack() as stack:
                view, _ = open_view(src.path, cfg, stack)
                pview = None
                if src.pair is not None:
                    pview, _ = pair_view(view, src.pair, cfg, stack)
                self.stack.enter_context(stack.pop_all())
            area = None if src.aoi_wkb is None else shapely.from_wkb(src.aoi_wkb)
            if area is not None:
                shapely.prepare(area)
            self.views[i], self.aois[i] = (view, pview), area
        return self.views[i]

    def aoi(self, i: int) -> Any:
        self.view(i)
        return self.aois[i]

    def close(self) -> None:
        self.stack.close()


class WindowSampler:
    """Random ``crop x crop`` windows over the valid ground of one domain's rasters.

    :meth:`draw` takes a numpy Generator and returns the pixels of an accepted window
    (and of its pair); everything random comes from that generator. Rasters open on
    first use in each process; pickling (to a loader worker) drops them.
    """

    def __init__(self, sources: Sequence[WindowSource], crop: int, tile_config: Any,
                 max_nodata: float, min_std: float) -> None:
        self.sources = tuple(sources)
        self.crop = crop
        self.tile_config = tile_config
        self.max_nodata = max_nodata
        self.min_std = min_std
        weights = np.array([max(s.valid_px, 0) for s in self.sources], dtype=np.float64)
        if not len(weights) or weights.sum() <= 0:
            weights = np.ones(len(self.sources))
        self.cum = np.cumsum(weights / weights.sum())
        #: Accepted windows found before training; drawn from when retries run out.
        self.fallback: tuple[Window, ...] = ()
        self._opened: _Opened | None = None

    @property
    def valid_px(self) -> int:
        return sum(s.valid_px for s in self.sources)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_opened"] = None
        return state

    def _views(self) -> _Opened:
        if self._opened is None or self._opened.pid != os.getpid():
            self._opened = _Opened(self)  # a forked worker never touches its parent's files
        return self._opened

    def close(self) -> None:
        if self._opened is not None and self._opened.pid == os.getpid():
            self._opened.close()
        self._opened = None

    # -- drawing --

    def pick_source(self, rng: np.random.Generator) -> int:
        """A source index, with probability proportional to its valid pixels."""
        return int(min(np.searchsorted(self.cum, rng.random(), side="right"),
                       len(self.sources) - 1))

    def position(self, source: int, rng: np.random.Generator) -> tuple[int, int]:
        """A uniform top-left pixel for a window in ``source``'s region.

        Along an axis where the region is shorter than the crop, the window covers the
        whole region and hangs over it (read padded with nodata).
        """
        col0, row0, width, height = self.sources[source].region
        crop = self.crop
        col = col0 + int(rng.integers(0, width - crop + 1)) if width >= crop else \
            col0 + width - crop + int(rng.integers(0, crop - width + 1))
        row = row0 + int(rng.integers(0, height - crop + 1)) if height >= crop else \
            row0 + height - crop + int(rng.integers(0, crop - height + 1))
        return col, row

    def read(self, win: Window) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Pixels ``(bands, crop, crop)`` and validity ``(crop, crop)`` of A (and its pair)."""
        from geogan.grid import ChipWindow

        opened = self._views()
        cw = ChipWindow(win.col, win.row, self.crop, self.crop)
        views = [v for v in opened.view(win.source) if v is not None]
        chips = [v.read(cw) for v in views]
        valids = [v.valid(cw, ch) for v, ch in zip(views, chips, strict=True)]
        return chips, valids

    def inside_aoi(self, win: Window) -> bool:
        import shapely

        area = self._views().aoi(win.source)
        if area is None:
            return True
        box = shapely.box(win.col + _EDGE, win.row + _EDGE, win.col + self.crop - _EDGE,
                          win.row + self.crop - _EDGE)
        return bool(shapely.covers(area, box))

    def try_draw(self, rng: np.random.Generator
                 ) -> tuple[Window, list[np.ndarray], list[np.ndarray]] | None:
        """An accepted window, or None when every try was rejected."""
        from geogan.tiling import rejection

        for _ in range(RASTER_ROUNDS):
            source = self.pick_source(rng)
            for _ in range(TRIES_PER_RASTER):
                col, row = self.position(source, rng)
                win = Window(source, col, row)
                if not self.inside_aoi(win):
                    continue
                chips, valids = self.read(win)
                if rejection(chips, valids, self.max_nodata, self.min_std) is None:
                    return win, chips, valids
        return None

    def draw(self, rng: np.random.Generator) -> tuple[Window, list[np.ndarray],
                                                      list[np.ndarray]]:
        """An accepted window; after many rejections, one of the windows found before training."""
        got = self.try_draw(rng)
        if got is not None:
            return got
        if not self.fallback:
            raise InputError("no window passed the filters")  # scan_windows checks first
        win = self.fallback[int(rng.integers(len(self.fallback)))]
        chips, valids = self.read(win)
        return win, chips, valids


# -- the dataset --------------------------------------------------------------------------

class RasterWindowDataset(Dataset):
    """Samples ``{"A": (Ca, crop, crop), "B": (Cb, crop, crop)}`` float32 in ``[-1, 1]``.

    Indexed like :class:`geogan.datasets.ChipDataset` by ``(index, seed)`` from
    :class:`geogan.datasets.EpochSampler`; only the seed matters (the index places the
    sample in the epoch). Unpaired: an A window and an independent B window; paired:
    an A window and B over the same ground. The same flips and rotation for both
    sides of a pair (off with ``augment=False``).
    """

    def __init__(self, a: WindowSampler, b: WindowSampler | None, norm_a: BandNorm,
                 norm_b: BandNorm, crop: int, length: int, augment: bool = True) -> None:
        self.a = a
        self.b = b
        self.norm_a = norm_a
        self.norm_b = norm_b
        self.crop = crop
        self.length = length
        self.augment = augment

    @property
    def paired(self) -> bool:
        return self.b is None

    def __len__(self) -> int:
        return self.length

    def windows(self, seed: int) -> tuple[Window, Window | None]:
        """The window(s) of the sample with ``seed`` (for tests and tools)."""
        rng = np.random.default_rng(seed)
        win_a = self.a.draw(rng)[0]
        return win_a, (None if self.b is None else self.b.draw(rng)[0])

    def raw(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """The sample's A and B pixels, in raster values, augmented."""
        rng = np.random.default_rng(seed)
        _, chips_a, _ = self.a.draw(rng)
        if self.b is None:
            arr_a, arr_b = chips_a
            pa = pb = draw_augment(rng, self.crop, self.crop, self.crop, self.augment)
        else:
            _, chips_b, _ = self.b.draw(rng)
            arr_a, arr_b = chips_a[0], chips_b[0]
            pa = draw_augment(rng, self.crop, self.crop, self.crop, self.augment)
            pb = draw_augment(rng, self.crop, self.crop, self.crop, self.augment)
        return apply_augment(arr_a, pa, self.crop), apply_augment(arr_b, pb, self.crop)

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, torch.Tensor]:
        _, seed = key if isinstance(key, tuple) else (int(key), int(key))
        arr_a, arr_b = self.raw(seed)
        return {"A": torch.from_numpy(self.norm_a.to_model(arr_a)),
                "B": torch.from_numpy(self.norm_b.to_model(arr_b))}

    def preview_batch(self, n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` fixed windows of A and of B (found before training) for previews."""
        def chips(sampler: WindowSampler, side: int) -> list[np.ndarray]:
            picks = sampler.fallback[:: max(1, len(sampler.fallback) // n)][:n]
            return [sampler.read(w)[0][side] for w in picks]

        a = chips(self.a, 0)
        b = chips(self.a, 1) if self.b is None else chips(self.b, 0)
        k = min(len(a), len(b))
        return (torch.stack([torch.from_numpy(self.norm_a.to_model(x)) for x in a[:k]]),
                torch.stack([torch.from_numpy(self.norm_b.to_model(x)) for x in b[:k]]))


# -- planning a domain --------------------------------------------------------------------

@dataclass
class _Scene:
    """One opened raster while planning: its view, source and AOI in pixel coordinates."""

    path: Path
    view: Any
    aoi_px: Any = None
    files: tuple[str, ...] = field(default_factory=tuple)


def _open_scenes(paths: Sequence[Path], option: str, windows: WindowConfig, aoi: Path | None,
                 aoi_option: str, stack: contextlib.ExitStack) -> list[_Scene]:
    """Open every raster of a domain, check they agree, put the AOI on each grid."""
    import shapely

    from geogan.tiling import open_view, read_aoi

    cfg = windows.tile_config()
    scenes = []
    for p in paths:
        view, src = open_view(p, cfg, stack, option=option)
        scenes.append(_Scene(p, view, files=tuple(f for f in src.files
                                                  if not f.startswith("/vsi"))))
    first = scenes[0].view
    for s in scenes[1:]:
        v = s.view
        if len(v.bands) != len(first.bands):
            raise InputError(f"{s.path} has {len(v.bands)} bands but {scenes[0].path} has "
                             f"{len(first.bands)}; all rasters of {option} must have the same "
                             "bands")
        if v.dtype != first.dtype:
            raise InputError(f"{s.path} is {v.dtype} but {scenes[0].path} is {first.dtype}; "
                             f"all rasters of {option} must have one dtype (convert with "
                             "gdal_translate -ot)")
    if aoi is not None:
        gdf = read_aoi(aoi, aoi_option)
        for s in scenes:
            area = _aoi_on_grid(gdf, aoi, s.view, aoi_option)
            inv = ~s.view.transform
            s.aoi_px = shapely.affinity.affine_transform(
                area, [inv.a, inv.b, inv.d, inv.e, inv.c, inv.f])
    return scenes


def _aoi_on_grid(gdf: Any, aoi: Path, view: Any, option: str) -> Any:
    """The AOI in ``view``'s CRS, cut first to the raster's footprint in the AOI's CRS.

    Cutting first keeps polygons far from the raster (outside the area of a UTM zone,
    say) from projecting to infinities.
    """
    import geopandas as gpd
    import shapely
    from rasterio.warp import transform_bounds

    from geogan.tiling import aoi_area

    if gdf.crs is None or view.crs is None:
        return aoi_area(gdf, aoi, view, option)
    left, top = view.transform * (0, 0)
    right, bottom = view.transform * (view.width, view.height)
    try:
        bounds = transform_bounds(view.crs, gdf.crs.to_wkt(), min(left, right),
                                  min(top, bottom), max(left, right), max(top, bottom),
                                  densify_pts=21)
    except Exception as exc:  # PROJ errors come as several types
        raise InputError(f"{option} {aoi}: {view.path}'s footprint cannot be projected to the "
                         f"AOI's CRS ({first_line(exc)}); give the AOI in the raster's CRS") \
            from exc
    area = shapely.union_all(gdf.geometry.values).intersection(shapely.box(*bounds))
    if area.is_empty:
        return area
    area = gpd.GeoSeries([area], crs=gdf.crs).to_crs(view.crs.to_wkt()).iloc[0]
    if not np.isfinite(shapely.get_coordinates(area)).all():
        raise InputError(f"{option} {aoi} cannot be projected onto {view.path}'s CRS; give the "
                         "AOI in the raster's CRS")
    return area


def _region(scene: _Scene, bounds: tuple[int, int, int, int] | None
            ) -> tuple[int, int, int, int] | None:
    """The scene's grid cut to the AOI's bounding box and to ``bounds`` (a pair overlap)."""
    from geogan.grid import ChipWindow, intersection

    v = scene.view
    region: ChipWindow | None = ChipWindow(0, 0, v.width, v.height)
    if bounds is not None:
        region = intersection(region, ChipWindow(*bounds))
    if scene.aoi_px is not None and region is not None:
        if scene.aoi_px.is_empty:
            return None
        x0, y0, x1, y1 = scene.aoi_px.bounds
        c0, r0 = math.floor(x0 + _EDGE), math.floor(y0 + _EDGE)
        c1, r1 = math.ceil(x1 - _EDGE), math.ceil(y1 - _EDGE)
        if c1 <= c0 or r1 <= r0:
            return None
        region = intersection(region, ChipWindow(c0, r0, c1 - c0, r1 - r0))
    if region is None:
        return None
    return region.col_off, region.row_off, region.width, region.height


def estimate_valid(view: Any, region: tuple[int, int, int, int], aoi_px: Any = None) -> int:
    """Valid pixels of ``view`` in ``region`` (and inside ``aoi_px``), from a decimated read.

    Data and masks are read at most ``ESTIMATE_SIDE`` px on a side (GDAL uses overviews
    where the raster has them) with the validity rule of
    :func:`geogan.rasterio_meta.read_valid`; each decimated pixel stands for the
    pixels it covers.
    """
    import shapely
    from rasterio.enums import Resampling
    from rasterio.errors import NodataShadowWarning, RasterioError

    col0, row0, width, height = region
    step = max(1, math.ceil(max(width, height) / ESTIMATE_SIDE))
    shape = (max(1, math.ceil(height / step)), max(1, math.ceil(width / step)))
    from rasterio.windows import Window as RioWindow

    w = RioWindow(col0 - view.shift[0], row0 - view.shift[1], width, height)
    try:
        data = view.dataset.read(indexes=list(view.bands), window=w,
                                 out_shape=(len(view.bands), *shape),
                                 resampling=Resampling.nearest)
        valid = valid_mask(data, view.nodata)
        if view.masked:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NodataShadowWarning)
                masks = view.dataset.read_masks(list(view.bands), window=w,
                                                out_shape=(len(view.bands), *shape),
                                                resampling=Resampling.nearest)
            valid &= (masks != 0).all(axis=0)
    except RasterioError as exc:
        raise InputError(f"{view.path} could not be read ({first_line(exc)}); the file may be "
                         "truncated or corrupt: re-download or re-export it") from exc
    if aoi_px is not None:
        ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
        cx = col0 + (xs + 0.5) * width / shape[1]
        cy = row0 + (ys + 0.5) * height / shape[0]
        valid &= shapely.contains_xy(aoi_px, cx, cy)
    return int(round(np.count_nonzero(valid) * (width * height) / valid.size))


def _sources(scenes: Sequence[_Scene], option: str, aoi: Path | None, aoi_option: str,
             pairs: dict[int, list[tuple[Path, tuple[int, int, int, int]]]] | None = None
             ) -> list[WindowSource]:
    out = []
    for i, s in enumerate(scenes):
        partners: list[tuple[Path | None, tuple[int, int, int, int] | None]] = \
            [(None, None)] if pairs is None else list(pairs.get(i, []))
        for pair, bounds in partners:
            region = _region(s, bounds)
            if region is None:
                log.warning("%s %s does not intersect %s; no windows from it", aoi_option, aoi,
                            s.path)
                continue
            valid = estimate_valid(s.view, region, s.aoi_px)
            if valid == 0:
                log.warning("%s has no valid pixels%s; no windows from it", s.path,
                            f" inside {aoi_option} {aoi}" if aoi is not None else "")
                continue
            out.append(WindowSource(s.path, pair, region,
                                    None if s.aoi_px is None else s.aoi_px.wkb, valid))
    if not out:
        names = ", ".join(str(s.path) for s in scenes)
        if aoi is not None:
            raise InputError(f"{aoi_option} {aoi} covers no valid pixels of {option} {names}; "
                             "check the AOI's extent and CRS")
        raise InputError(f"{option} {names} holds no valid pixels (all nodata or masked); "
                         "check the nodata value and masks")
    return out


def _pair_partners(scenes_a: Sequence[_Scene], b_paths: Sequence[Path], windows: WindowConfig,
                   stack: contextlib.ExitStack
                   ) -> dict[int, list[tuple[Path, tuple[int, int, int, int]]]]:
    """For each A raster, the B rasters overlapping it and the overlap on A's grid."""
    from geogan.tiling import pair_view

    cfg = windows.tile_config()
    partners: dict[int, list[tuple[Path, tuple[int, int, int, int]]]] = {}
    used: set[Path] = set()
    bands_b: tuple[Path, int, str] | None = None
    for i, s in enumerate(scenes_a):
        for b in b_paths:
            pview, region = pair_view(s.view, b, cfg, stack)
            if bands_b is None:
                bands_b = (b, len(pview.bands), pview.dtype)
            elif len(pview.bands) != bands_b[1]:
                raise InputError(f"{b} has {len(pview.bands)} bands but {bands_b[0]} has "
                                 f"{bands_b[1]}; all rasters of --b must have the same bands")
            elif pview.dtype != bands_b[2]:
                raise InputError(f"{b} is {pview.dtype} but {bands_b[0]} is {bands_b[2]}; all "
                                 "rasters of --b must have one dtype (convert with "
                                 "gdal_translate -ot)")
            if region is None:
                continue
            partners.setdefault(i, []).append(
                (b, (region.col_off, region.row_off, region.width, region.height)))
            used.add(b)
    lonely_a = [str(s.path) for i, s in enumerate(scenes_a) if i not in partners]
    lonely_b = [str(b) for b in b_paths if b not in used]
    if not partners:
        raise InputError(f"no raster of --a overlaps a raster of --b ({len(scenes_a)} A, "
                         f"{len(b_paths)} B); pix2pix needs rasters of the same ground")
    if lonely_a:
        log.warning("%d raster(s) of --a overlap no raster of --b and are left out: %s",
                    len(lonely_a), ", ".join(lonely_a))
    if lonely_b:
        log.warning("%d raster(s) of --b overlap no raster of --a and are left out: %s",
                    len(lonely_b), ", ".join(lonely_b))
    return partners


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
        aoi, aoi_option = windows.aoi_for("a" if option == "--a" else "b")
        where = f" inside {aoi_option} {aoi}" if aoi is not None else ""
        raise InputError(f"{option}: no {crop} px window{where} passes --max-nodata "
                         f"{windows.max_nodata:g} and --min-std {windows.min_std:g} (after "
                         f"{3 * RASTER_ROUNDS * TRIES_PER_RASTER} tries); loosen them or pass "
                         "a smaller --crop")
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


def open_raster_data(model: str, a: Sequence[Path | str], b: Sequence[Path | str], crop: int,
                     windows: WindowConfig, *, augment: bool = True, name_a: str | None = None,
                     name_b: str | None = None,
                     norms: tuple[BandNorm, BandNorm] | None = None,
                     min_length: int = 1) -> TrainingData:
    """Plan random-window training on rasters ``a`` and ``b`` (files, globs, ``@LIST``).

    Every raster is opened and checked, sources weighted, a sample of windows drawn
    (normalisation statistics unless ``norms`` is given, previews) and the epoch
    length set to ``ceil(valid pixels / crop**2)`` windows (of A for pix2pix, the
    larger domain for CycleGAN), at least ``min_length``. Raises :class:`InputError`
    for rasters of different band counts or dtypes in one domain, a domain with no
    valid window, and pix2pix rasters that do not overlap.
    """
    if crop < 1:
        raise InputError(f"--crop must be positive, got {crop}")
    paths_a = expand_rasters(a, "--a")
    if not b:
        raise InputError(f"{model} needs rasters of both domains: pass --b as well")
    paths_b = expand_rasters(b, "--b")
    for pa in paths_a:
        if any(pa.resolve() == pb.resolve() for pb in paths_b):
            raise InputError(f"{pa} is given as both --a and --b; give each domain its own "
                             "rasters")
    tile_cfg = windows.tile_config()
    aoi_a, opt_a = windows.aoi_for("a")
    aoi_b, opt_b = windows.aoi_for("b")
    with contextlib.ExitStack() as stack:
        scenes_a = _open_scenes(paths_a, "--a", windows, aoi_a, opt_a, stack)
        if model == "pix2pix":
            if windows.aoi_b is not None:
                raise InputError("pix2pix windows are read from B over A's footprint; limit "
                                 "them with --aoi or --aoi-a, not --aoi-b")
            partners = _pair_partners(scenes_a, paths_b, windows, stack)
            sampler_a = WindowSampler(_sources(scenes_a, "--a", aoi_a, opt_a, partners), crop,
                                      tile_cfg, windows.max_nodata, windows.min_std)
            sampler_b = None
            view_b_nodata = _pair_nodata(paths_b, scenes_a, partners, windows, stack)
        else:
            scenes_b = _open_scenes(paths_b, "--b", windows, aoi_b, opt_b, stack)
            sampler_a = WindowSampler(_sources(scenes_a, "--a", aoi_a, opt_a), crop, tile_cfg,
                                      windows.max_nodata, windows.min_std)
            sampler_b = WindowSampler(_sources(scenes_b, "--b", aoi_b, opt_b), crop, tile_cfg,
                                      windows.max_nodata, windows.min_std)
            first_b = scenes_b[0].view
            view_b_nodata = (len(first_b.bands), first_b.dtype, first_b.nodata)
    first_a = scenes_a[0].view
    bands_a, dtype_a, nodata_a = len(first_a.bands), first_a.dtype, first_a.nodata
    bands_b, dtype_b, nodata_b = view_b_nodata

    found_a = scan_windows(sampler_a, "--a", windows, crop)
    found_b = found_a if sampler_b is None else scan_windows(sampler_b, "--b", windows, crop)
    norm_a = _norm(found_a, 0, dtype_a, nodata_a, norms[0] if norms else None, "--a", bands_a)
    norm_b = _norm(found_b, 1 if sampler_b is None else 0, dtype_b, nodata_b,
                   norms[1] if norms else None, "--b", bands_b)

    valid = sampler_a.valid_px if sampler_b is None else max(sampler_a.valid_px,
                                                             sampler_b.valid_px)
    length = max(math.ceil(valid / crop ** 2), min_length)
    default_a, default_b = _name(paths_a), _name(paths_b)
    if default_a == default_b:
        default_a, default_b = "A", "B"
    dom_a = Domain(name_a or default_a, paths_a[0].parent, tuple(paths_a), bands_a, dtype_a,
                   nodata_a, norm_a, min_size=crop)
    dom_b = Domain(name_b or default_b, paths_b[0].parent, tuple(paths_b), bands_b, dtype_b,
                   nodata_b, norm_b, min_size=crop)
    dataset = RasterWindowDataset(sampler_a, sampler_b, norm_a, norm_b, crop, length, augment)
    for sampler in (sampler_a, sampler_b):
        if sampler is not None:
            sampler.close()  # reopened lazily by whichever process reads next
    layout = LAYOUTS[1] if model == "pix2pix" else LAYOUTS[0]
    log.info("training data: random %d px windows from %d raster(s) of %s (%d bands %s) and "
             "%d of %s (%d bands %s), %s; an epoch is %d windows (%.3g valid Mpx / crop^2)",
             crop, len(paths_a), dom_a.name, bands_a, dtype_a, len(paths_b), dom_b.name,
             bands_b, dtype_b, "paired by ground" if sampler_b is None else "unpaired", length,
             valid / 1e6)
    return TrainingData(dataset, dom_a, dom_b, layout)  # type: ignore[arg-type]


def _pair_nodata(paths_b: Sequence[Path], scenes_a: Sequence[_Scene],
                 partners: dict[int, list[tuple[Path, tuple[int, int, int, int]]]],
                 windows: WindowConfig, stack: contextlib.ExitStack
                 ) -> tuple[int, str, float | None]:
    """Bands, dtype and nodata of B as read on A's grid (its first partner)."""
    from geogan.tiling import pair_view

    i = next(iter(partners))
    b_path = partners[i][0][0]
    pview, _ = pair_view(scenes_a[i].view, b_path, windows.tile_config(), stack)
    return len(pview.bands), pview.dtype, pview.nodata


def open_inputs(model: str, a: Any, b: Any, crop: int, *, windows: WindowConfig | None = None,
                augment: bool = True, name_a: str | None = None, name_b: str | None = None,
                norms: tuple[BandNorm, BandNorm] | None = None,
                cache_mb: float = DEFAULT_CACHE_MB, min_length: int = 1) -> TrainingData:
    """Chips (folders, as :func:`geogan.datasets.open_training_data` reads them) or rasters.

    The rule: ``--a``/``--b`` given as one folder each are chip folders, read exactly as
    before; files, globs, VRTs and ``@LIST`` files are rasters sampled in random windows
    (:func:`open_raster_data`). Mixing a folder and rasters is an error.
    """
    windows = windows or WindowConfig()
    ins_a, ins_b = as_inputs(a), as_inputs(b)
    if not ins_a:
        raise InputError("--a is required: a folder of chips, or rasters (files or globs)")
    for option, given in (("--a", ins_a), ("--b", ins_b)):
        for p in given:
            text = str(p)
            if not p.exists() and not text.startswith("@") \
                    and not any(ch in text for ch in "*?["):
                raise InputError(f"{option} {p} does not exist; check the path")
    folders = [p for p in (*ins_a, *ins_b) if is_chip_folder(p)]
    if folders and len(folders) == len(ins_a) + len(ins_b) and len(ins_a) == 1 \
            and len(ins_b) <= 1:
        if not windows.is_default:
            raise InputError(f"{', '.join(windows.given())} apply to rasters; the chip folder "
                             f"{folders[0]} was filtered when it was tiled (pass rasters, or "
                             "drop those options)")
        return open_training_data(model, ins_a[0], ins_b[0] if ins_b else None, crop,
                                  augment=augment, name_a=name_a, name_b=name_b, norms=norms,
                                  cache_mb=cache_mb)
    if folders:
        raise InputError(f"{folders[0]} is a folder (read as chips) among other inputs; pass "
                         "either one chip folder per domain or rasters (files or globs such "
                         f"as {folders[0] / '*.tif'})")
    return open_raster_data(model, ins_a, ins_b, crop, windows, augment=augment,
                            name_a=name_a, name_b=name_b, norms=norms, min_length=min_length)


__all__ = ["LAYOUTS", "RasterWindowDataset", "Window", "WindowConfig", "WindowSampler",
           "WindowSource", "as_inputs", "estimate_valid", "expand_rasters", "is_chip_folder",
           "open_inputs", "open_raster_data", "scan_windows"]
