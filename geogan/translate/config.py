"""The options of a translation (:class:`TranslateConfig`) and the choices and defaults they use."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from geogan.blend import check_overlap
from geogan.contract import formats
from geogan.contract.choices import COMPRESSIONS, TRANSLATE_PRECISIONS
from geogan.contract.options import TRANSLATE
from geogan.errors import InputError, require_choice
from geogan.shards import parse_shard

#: Output file name endings that make OUTPUT a file rather than a folder
#: (geogan.contract.formats, the table of output formats).
OUTPUT_SUFFIXES: tuple[str, ...] = formats.output_suffixes()
#: Plain pictures (no georeference): read with a warning, written by GDAL's drivers.
PICTURE_DRIVERS: dict[str, str] = formats.picture_drivers()
#: Default batch size per device type when ``batch_size`` is None.
AUTO_BATCH: dict[str, int] = {"cuda": 8, "cpu": 1}
#: GDAL block cache (MB) while translating, so cached blocks do not grow with the raster.
GDAL_CACHE_MB = 128


@dataclass(frozen=True)
class TranslateConfig:
    """How to translate: windowing, blending, device and output options.

    ``tile``/``overlap`` are in pixels (``0 <= 2 * overlap <= tile``); ``blend`` is
    one of :data:`geogan.contract.choices.WINDOW_BLENDS`; ``batch_size`` None picks
    :data:`AUTO_BATCH` for the device; ``device`` is ``auto``, ``cpu``, ``cuda`` or
    ``cuda:N``; ``bands`` are 1-based input bands to use (all when None).
    """

    tile: int = TRANSLATE.default_of("tile")
    overlap: int = TRANSLATE.default_of("overlap")
    blend: str = TRANSLATE.default_of("blend")
    batch_size: int | None = TRANSLATE.default_of("batch_size")
    device: str = TRANSLATE.default_of("device")
    precision: str = TRANSLATE.default_of("precision")
    cog: bool = TRANSLATE.default_of("cog")
    compress: str = TRANSLATE.default_of("compress")
    bands: tuple[int, ...] | None = TRANSLATE.default_of("bands")
    skip_existing: bool = TRANSLATE.default_of("skip_existing")
    overwrite: bool = TRANSLATE.default_of("overwrite")
    compile: bool = TRANSLATE.default_of("compile")
    #: GDAL creation options (``--co KEY=VALUE``), applied after geogan's own.
    creation_options: tuple[tuple[str, str], ...] = ()
    #: Threads for the generator on the CPU and GDAL's compression (None: all cores).
    threads: int | None = TRANSLATE.default_of("threads")
    norm: str = TRANSLATE.default_of("norm")
    stats: str | None = TRANSLATE.default_of("stats")
    save_stats: bool = TRANSLATE.default_of("save_stats")
    shared_stats: bool = TRANSLATE.default_of("shared_stats")
    #: Translate only this part of each input: ``(xmin, ymin, xmax, ymax)`` in its CRS.
    bounds: tuple[float, float, float, float] | None = TRANSLATE.default_of("bounds")
    #: Translate only the part of each input these polygons cover; outside them: nodata.
    aoi: str | None = TRANSLATE.default_of("aoi")
    #: The output's nodata value (None: the target domain's, else the input's).
    nodata: float | None = TRANSLATE.default_of("nodata")
    #: Output band names (descriptions; colour names set the colour interpretation too).
    band_names: tuple[str, ...] | None = TRANSLATE.default_of("band_names")
    #: ``"I/N"``: task I of N of a job array (see :mod:`geogan.shards`); None: from the
    #: environment.
    shard: str | None = TRANSLATE.default_of("shard")
    #: Translate at the model's ground resolution and resample back (geogan.ground).
    at_model_resolution: bool = TRANSLATE.default_of("at_model_resolution")
    #: Write a STAC Item beside each output (geogan.stac).
    stac: bool = TRANSLATE.default_of("stac")
    #: Write <output>.confidence.tif beside each output (geogan.translate.confidence).
    confidence: bool = TRANSLATE.default_of("confidence")
    #: ``auto``/``on``/``off``: write a map domain as a paletted raster (geogan.palette).
    palette: str = TRANSLATE.default_of("palette")
    #: Rasters read with each input as one (geogan.translate.stacks), in training's order.
    stack: tuple[Path, ...] | None = TRANSLATE.default_of("stack")

    def __post_init__(self) -> None:
        if self.stack is not None:
            stack = (self.stack,) if isinstance(self.stack, (str, Path)) else self.stack
            object.__setattr__(self, "stack", tuple(Path(v) for v in stack))
        if self.threads is not None and self.threads < 1:
            raise InputError(f"`threads` must be at least 1, got {self.threads}")
        if self.tile < 8:
            raise InputError(f"`tile` must be at least 8 pixels, got {self.tile}")
        check_overlap(self.tile, self.overlap)
        require_choice("blend", self.blend, TRANSLATE["blend"].choices)
        if self.batch_size is not None and self.batch_size < 1:
            raise InputError(f"`batch_size` must be at least 1, got {self.batch_size}")
        require_choice("precision", self.precision, TRANSLATE_PRECISIONS)
        require_choice("compress", self.compress, COMPRESSIONS)
        if self.bands is not None:
            if not self.bands or any(int(b) < 1 for b in self.bands):
                raise InputError(f"`bands` must list 1-based band numbers such as 1,2,3; "
                                 f"got {self.bands}")
            object.__setattr__(self, "bands", tuple(int(b) for b in self.bands))
        if self.skip_existing and self.overwrite:
            raise InputError("`skip_existing` and `overwrite` contradict each other; pass one")
        require_choice("norm", self.norm, TRANSLATE["norm"].choices)
        require_choice("palette", self.palette, TRANSLATE["palette"].choices)
        if self.shard is not None:
            parse_shard(self.shard)
        if self.norm == "window" and (self.stats or self.save_stats or self.shared_stats):
            raise InputError("`norm` window uses no statistics; drop `stats`, `save_stats` and "
                             "`shared_stats` or choose `norm` global")
        self._check_subset_and_bands()
        if self.confidence and self.norm == "dense":
            raise InputError("`confidence` is computed with `norm` global or window, not dense; "
                             "choose another `norm` or drop `confidence`")
        if self.confidence and self.at_model_resolution:
            raise InputError("`at_model_resolution` writes no confidence raster beside the "
                             "output; drop `at_model_resolution` or `confidence`")
        if self.shared_stats and (self.norm != "global" or self.stats):
            raise InputError("`shared_stats` estimates one global set over all inputs; it needs "
                             "`norm` global and no `stats`")

    def _check_subset_and_bands(self) -> None:
        if self.bounds is not None:
            try:
                xmin, ymin, xmax, ymax = (float(v) for v in self.bounds)
            except (TypeError, ValueError) as exc:
                raise InputError(f"`bounds` must be four numbers xmin ymin xmax ymax, got "
                                 f"{self.bounds!r}") from exc
            if not all(math.isfinite(v) for v in (xmin, ymin, xmax, ymax)) \
                    or xmin >= xmax or ymin >= ymax:
                raise InputError(f"`bounds` {xmin:g} {ymin:g} {xmax:g} {ymax:g} is not an area; "
                                 "give xmin ymin xmax ymax with xmin < xmax and ymin < ymax")
            object.__setattr__(self, "bounds", (xmin, ymin, xmax, ymax))
        if self.aoi is not None:
            object.__setattr__(self, "aoi", str(self.aoi))
        if self.nodata is not None:
            object.__setattr__(self, "nodata", float(self.nodata))
        if self.band_names is not None:
            names = (self.band_names.split(",") if isinstance(self.band_names, str)
                     else list(self.band_names))
            names = [str(n).strip() for n in names]
            if not names or not all(names):
                raise InputError(f"`band_names` {self.band_names!r} has an empty name; write "
                                 "them like red,green,blue")
            object.__setattr__(self, "band_names", tuple(names))
