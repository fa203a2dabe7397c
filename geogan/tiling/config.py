"""What ``geogan tile`` is asked to do and what it did: options, choices, the chip folder kind."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from rasterio.enums import Resampling

from geogan.contract.choices import CHIP_COMPRESSIONS
from geogan.contract.names import CHIP_NAME_RE, INDEX_NAME, PAIR_DIRS
from geogan.contract.options import TILE
from geogan.errors import InputError
from geogan.fileio import FolderKind
from geogan.shards import parse_shard

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



def _owned_by_chips(rel: PurePosixPath) -> bool:
    """Files geogan writes in a chip folder: the index and chips (also under A/ and B/)."""
    if rel.as_posix() == INDEX_NAME:
        return True
    parts = rel.parts
    if len(parts) == 2 and parts[0] not in PAIR_DIRS:
        return False
    return len(parts) <= 2 and CHIP_NAME_RE.match(rel.name) is not None


def _chip_sub_folder(rel: PurePosixPath) -> bool:
    """Folders geogan makes in a chip folder: A/ and B/ of a paired one."""
    return len(rel.parts) == 1 and rel.name in PAIR_DIRS


#: What ``geogan tile --overwrite`` may replace: a folder with an index and chips only
#: (in A/ and B/ for pairs).
CHIP_FOLDER = FolderKind("chip folder", (INDEX_NAME,), _owned_by_chips, _chip_sub_folder)


@dataclass(frozen=True)
class TileConfig:
    """What :func:`tile_rasters` does; the fields mirror ``geogan tile``'s options.

    ``bands``/``pair_bands`` are 1-based band numbers (``None``: all bands).
    ``max_nodata`` is the largest nodata fraction a kept chip may have (a pixel is
    nodata when all its selected bands equal the nodata value). ``min_std`` drops
    near-constant chips: a chip is kept when at least one band's standard
    deviation over its valid pixels reaches ``min_std`` (0 keeps all).
    ``crs``/``res`` or ``align_to`` read the inputs through a warped view (refused outside
    the CRS's area of use, and onto more than ``max_upsample`` times the raster's pixels:
    :mod:`geogan.tiling.grids`);
    ``pair`` writes A/B chip pairs with the pair raster resampled onto each
    input's grid. ``threads`` is the number of chip-writing threads (0: write in
    the calling thread).
    """

    size: int = TILE.default_of("size")
    overlap: int = TILE.default_of("overlap")
    bands: tuple[int, ...] | None = TILE.default_of("bands")
    aoi: Path | None = TILE.default_of("aoi")
    max_nodata: float = TILE.default_of("max_nodata")
    min_std: float = TILE.default_of("min_std")
    crs: str | None = TILE.default_of("crs")
    res: float | None = TILE.default_of("res")
    align_to: Path | None = TILE.default_of("align_to")
    max_upsample: float = TILE.default_of("max_upsample")
    pair: Path | None = TILE.default_of("pair")
    pair_bands: tuple[int, ...] | None = TILE.default_of("pair_bands")
    resampling: str = TILE.default_of("resampling")
    compress: str = TILE.default_of("compress")
    allow_no_crs: bool = TILE.default_of("allow_no_crs")
    overwrite: bool = TILE.default_of("overwrite")
    threads: int = TILE.default_of("threads")
    #: GDAL creation options for the chips (``--co KEY=VALUE``), applied after geogan's own.
    creation_options: tuple[tuple[str, str], ...] = ()
    #: ``"I/N"``: task I of N of a job array (see :mod:`geogan.shards`); None: from the
    #: environment.
    shard: str | None = TILE.default_of("shard")

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
            raise InputError(f"`size` {self.size} must be a positive number of pixels")
        if not 0 <= self.overlap < self.size:
            raise InputError(f"`overlap` {self.overlap} must be at least 0 and smaller than "
                             f"`size` {self.size}")
        for opt, bands in (("`bands`", self.bands), ("`pair_bands`", self.pair_bands)):
            if bands is not None and (not bands or any(b < 1 for b in bands)):
                raise InputError(f"{opt} {fmt_bands(bands)} must list band numbers from 1, "
                                 "e.g. 1,2,3")
        if not 0.0 <= self.max_nodata <= 1.0:
            raise InputError(f"`max_nodata` {self.max_nodata} must be a fraction between 0 and 1")
        if self.min_std < 0 or math.isnan(self.min_std):
            raise InputError(f"`min_std` {self.min_std} must be 0 or more")
        if self.res is not None and not self.res > 0:
            raise InputError(f"`res` {self.res} must be a positive pixel size in CRS units")
        if not self.max_upsample >= 1.0:
            raise InputError(f"`max_upsample` {self.max_upsample} must be 1 or more")
        if self.align_to is not None and (self.crs is not None or self.res is not None):
            raise InputError("`align_to` takes the CRS and resolution from its raster; "
                             "do not combine it with `crs`/`res`")
        if self.pair_bands is not None and self.pair is None:
            raise InputError("`pair_bands` needs `pair` B.tif")
        if self.resampling not in RESAMPLING:
            raise InputError(f"unknown resampling {self.resampling!r}; choose one of "
                             f"{', '.join(RESAMPLING)}")
        if self.compress not in CHIP_COMPRESSIONS:
            raise InputError(f"unknown compression {self.compress!r}; choose one of "
                             f"{', '.join(CHIP_COMPRESSIONS)}")
        if self.threads < 0:
            raise InputError(f"threads must be 0 or more, got {self.threads}")
        if self.shard is not None:
            parse_shard(self.shard)

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
    #: A job-array task found its part complete (from an earlier try) and left it alone.
    existing: bool = False


def fmt_bands(bands: tuple[int, ...]) -> str:
    """Band numbers as ``--bands`` takes them: ``1,2,3``."""
    return ",".join(str(b) for b in bands)
