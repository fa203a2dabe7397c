"""A domain, one side of the translation: its description, and its chips checked against
each other and the crop, with their normalisation."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geogan.datasets.images import (
    PICTURE_LAYOUTS,
    Half,
    ImageInfo,
    _half,
    _half_mask,
    convert_picture,
    inspect_image,
    is_picture,
    read_image,
    read_valid_pixels,
)
from geogan.errors import InputError
from geogan.ground import DomainGround
from geogan.normalize import BandNorm

log = logging.getLogger(__name__)

#: At most this many chips per domain feed the normalisation statistics.
MAX_STAT_CHIPS = 64


@dataclass(frozen=True)
class Domain:
    """One side of the translation: its files, bands, dtype, nodata and normalisation."""

    name: str
    folder: Path
    files: tuple[Path, ...]
    bands: int
    dtype: str
    nodata: float | None
    norm: BandNorm
    half: Half = "full"
    min_size: int = 0
    #: Ground resolution (m/px) and CRS of the data (see :mod:`geogan.ground`).
    gsd_m: float | None = None
    crs: str | None = None
    #: The rasters stacked as this domain's input (:func:`geogan.stack.stack_record`).
    stack: list[dict[str, Any]] | None = None


def _check_domain(infos: Sequence[ImageInfo], option: str, crop: int,
                  half: Half) -> tuple[int, str, float | None, int]:
    """Same bands and dtype everywhere, big enough for the crop; -> bands, dtype, nodata."""
    first = infos[0]
    nodatas = {i.nodata for i in infos if i.nodata is not None}
    for info in infos:
        if info.bands != first.bands:
            raise InputError(f"chip {info.path} has {info.bands} bands but {first.path} has "
                             f"{first.bands}; all chips of {option} must have the same bands")
        if info.dtype != first.dtype:
            raise InputError(f"chip {info.path} is {info.dtype} but {first.path} is "
                             f"{first.dtype}; all chips of {option} must have one dtype")
        width = info.width // 2 if half != "full" else info.width
        if min(info.height, width) < crop:
            what = "each half of " if half != "full" else ""
            raise InputError(f"{what}chip {info.path} is {width}x{info.height} px, smaller "
                             f"than `crop` {crop}; pass a smaller `crop` or re-tile with a "
                             f"larger `size`")
    if len(nodatas) > 1:
        log.warning("chips of %s have different nodata values %s; using %s", option,
                    sorted(nodatas), min(nodatas))
    nodata = min(nodatas) if nodatas else None
    min_size = min(min(i.height, i.width // 2 if half != "full" else i.width) for i in infos)
    return first.bands, first.dtype, nodata, min_size


class _Scan:
    """Inspection results of one folder: infos and any pixels already decoded."""

    def __init__(self, files: Sequence[Path]) -> None:
        self.infos: list[ImageInfo] = []
        self.pixels: dict[Path, np.ndarray] = {}
        for f in files:
            info, arr = inspect_image(f)
            self.infos.append(info)
            if arr is not None:
                self.pixels[f] = arr

    def harmonise_pictures(self, option: str) -> None:
        """Bring PNG/JPEG pictures to the band layout most of them have (ties: more bands).

        A grayscale or RGBA picture among RGB ones is converted on reading
        (:func:`~geogan.datasets.images.convert_picture`), logged in one line.
        GeoTIFF chips are left as they are: their band counts are data.
        """
        pictures = [i for i in self.infos if is_picture(i.path)]
        counts = Counter(i.bands for i in pictures)
        if len(counts) < 2 or not set(counts) <= set(PICTURE_LAYOUTS):
            return
        target = max(counts, key=lambda bands: (counts[bands], bands))
        converted: Counter[int] = Counter()
        for k, info in enumerate(self.infos):
            if is_picture(info.path) and info.bands != target:
                converted[info.bands] += 1
                self.infos[k] = dataclasses.replace(info, bands=target)
                if info.path in self.pixels:
                    self.pixels[info.path] = convert_picture(self.pixels[info.path], target)
        log.info("converted %d of %d pictures of %s to %s (%s)", sum(converted.values()),
                 len(pictures), option, PICTURE_LAYOUTS[target],
                 ", ".join(f"{n} {PICTURE_LAYOUTS[bands]}"
                           for bands, n in sorted(converted.items())))


def _make_domain(name: str, folder: Path, scan: _Scan, option: str, crop: int, half: Half,
                 cache: dict[Path, np.ndarray], norm: BandNorm | None) -> Domain:
    bands, dtype, nodata, min_size = _check_domain(scan.infos, option, crop, half)
    if norm is None:
        files = [i.path for i in scan.infos]
        per_chip = bands * scan.infos[0].height * scan.infos[0].width
        n = max(1, min(MAX_STAT_CHIPS, len(files), 4_000_000 // max(per_chip, 1)))
        picks = [files[round(k * (len(files) - 1) / max(n - 1, 1))] for k in range(n)]
        samples = ((_half(cache[p] if p in cache else read_image(p, bands), half),
                    _half_mask(read_valid_pixels(p), half))
                   for p in dict.fromkeys(picks))
        norm = BandNorm.from_samples(samples, dtype, nodata)
    elif norm.bands != bands or norm.dtype != dtype:
        raise InputError(f"chips of {option} ({folder}) have {bands} {dtype} bands but the run "
                         f"was trained on {norm.bands} {norm.dtype} bands; give the same data")
    ground = survey_chips([i.path for i in scan.infos], option)
    return Domain(name, Path(folder), tuple(i.path for i in scan.infos), bands, dtype, nodata,
                  norm, half, min_size, ground.gsd_m, ground.crs)


def survey_chips(files: Sequence[Path], option: str) -> DomainGround:
    """The ground resolution and CRS of up to :data:`MAX_STAT_CHIPS` chips spread over
    ``files``; logs one line when any of them was generated by geogan (synthetic)."""
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    from geogan.ground import domain_ground
    from geogan.provenance import warn_synthetic

    n = min(MAX_STAT_CHIPS, len(files))
    picks = list(dict.fromkeys(files[round(k * (len(files) - 1) / max(n - 1, 1))]
                               for k in range(n)))
    grids, names, tags = [], [], []
    for p in picks:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with rasterio.open(p) as src:
                    grids.append((src.crs, src.transform, src.width, src.height))
                    names.append(p.name)
                    tags.append(src.tags())
        except RasterioIOError:
            continue  # read errors are reported where the chip's pixels are read
    warn_synthetic(names, tags, option)
    return domain_ground(grids, names, option, fix="re-tile them with geogan tile `res` to one "
                         "pixel size")
