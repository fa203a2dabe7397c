"""Opening chip folders as training data: the layout found (unpaired, paired or side by side),
the chips checked, paired and cached, the two domains described."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geogan.datasets.chips import ChipDataset
from geogan.datasets.domains import Domain, _make_domain, _Scan
from geogan.datasets.images import ImageInfo, list_images, read_image
from geogan.errors import InputError
from geogan.normalize import BandNorm

log = logging.getLogger(__name__)

#: Keep all chips in memory when they take at most this many MB (decoded).
DEFAULT_CACHE_MB = 1024


@dataclass
class TrainingData:
    """The dataset of ``{"A": (C, crop, crop), "B": ...}`` samples and its two domains."""

    dataset: ChipDataset
    a: Domain
    b: Domain
    layout: str  # "unpaired", "paired" or "side_by_side"
    extra: dict[str, Any] = field(default_factory=dict)


def _estimate_mb(infos: Sequence[ImageInfo]) -> float:
    return sum(i.bands * i.height * i.width * np.dtype(i.dtype).itemsize for i in infos) / 2**20



def _paired_layout(folder: Path) -> tuple[Path, Path] | None:
    a, b = folder / "A", folder / "B"
    return (a, b) if a.is_dir() and b.is_dir() else None


def _pair_files(a_folder: Path, a_files: list[Path], b_folder: Path,
                b_files: list[Path]) -> tuple[list[Path], list[Path]]:
    """Match chips of A and B by their path relative to their folder."""
    b_by_name = {p.relative_to(b_folder).as_posix(): p for p in b_files}
    names = [p.relative_to(a_folder).as_posix() for p in a_files]
    missing = [n for n in names if n not in b_by_name]
    if missing:
        raise InputError(f"{len(missing)} chips in {a_folder} have no partner of the same name "
                         f"in {b_folder} (first: {missing[0]}); pix2pix needs pairs as written "
                         "by 'geogan tile `pair`'")
    extra = len(b_files) - len(names)
    if extra > 0:
        log.warning("%d chips in %s have no partner in %s and are ignored", extra, b_folder,
                    a_folder)
    return a_files, [b_by_name[n] for n in names]


#: Sub-folders of a data set root as pytorch-CycleGAN-and-pix2pix's data sets have them.
_SPLITS = ("train", "val", "test")


def _train_split(folder: Path, option: str) -> Path:
    """``root/train`` for a data set root holding train/ and val/ or test/ (pix2pix's maps)."""
    if folder.is_dir() and (folder / "train").is_dir() \
            and any((folder / s).is_dir() for s in _SPLITS[1:]):
        log.warning("%s %s holds %s; training on %s only", option, folder,
                    "/, ".join(s for s in _SPLITS if (folder / s).is_dir()) + "/",
                    folder / "train")
        return folder / "train"
    return folder


def open_training_data(model: str, a: Path, b: Path | None, crop: int, *,
                       augment: bool = True, name_a: str | None = None,
                       name_b: str | None = None,
                       norms: tuple[BandNorm, BandNorm] | None = None,
                       cache_mb: float = DEFAULT_CACHE_MB) -> TrainingData:
    """Find, check and describe the training chips of ``model`` ("cyclegan" or "pix2pix").

    ``norms`` (when resuming) replaces the statistics with those the run started with
    and checks the chips still match them. Raises :class:`InputError` naming the
    file or folder at fault.
    """
    a = _train_split(Path(a), "--a")
    b = _train_split(Path(b), "--b") if b is not None else None
    if crop < 1:
        raise InputError(f"`crop` must be positive, got {crop}")
    if model == "cyclegan":
        if b is None:
            raise InputError("CycleGAN needs two folders: pass `a` FOLDER_A `b` FOLDER_B")
        for opt, folder in (("--a", a), ("--b", b)):
            if folder.is_dir() and _paired_layout(folder):
                raise InputError(f"{opt} {folder} holds A/ and B/ subfolders; pass "
                                 f"`a` {folder / 'A'} `b` {folder / 'B'}")
            if folder.is_dir() and (folder / "trainA").is_dir():
                raise InputError(f"{opt} {folder} holds trainA/ and trainB/ subfolders; pass "
                                 f"`a` {folder / 'trainA'} `b` {folder / 'trainB'}")
        layout = "unpaired"
        a_files, b_files = list_images(a, "--a"), list_images(b, "--b")
        a_folder, b_folder = a, b
    elif model == "pix2pix":
        if b is None and a.is_dir() and _paired_layout(a):
            a_folder, b_folder = _paired_layout(a)  # type: ignore[misc]
            layout = "paired"
        elif b is None:
            a_folder = b_folder = a
            layout = "side_by_side"
        else:
            a_folder, b_folder = a, b
            layout = "paired"
        a_files = list_images(a_folder, "--a")
        if layout == "paired":
            a_files, b_files = _pair_files(a_folder, a_files, b_folder,
                                           list_images(b_folder, "--b"))
        else:
            b_files = a_files
    else:
        raise InputError(f"unknown `model` {model!r}; choose cyclegan or pix2pix")

    scan_a = _Scan(a_files)
    scan_b = scan_a if layout == "side_by_side" else _Scan(b_files)
    if layout == "paired":
        for ia, ib in zip(scan_a.infos, scan_b.infos, strict=True):
            if (ia.height, ia.width) != (ib.height, ib.width):
                raise InputError(f"paired chips {ia.path} ({ia.width}x{ia.height}) and "
                                 f"{ib.path} ({ib.width}x{ib.height}) differ in size; "
                                 "re-create them with 'geogan tile `pair`'")
    all_infos = scan_a.infos + ([] if scan_b is scan_a else scan_b.infos)
    cache: dict[Path, np.ndarray] = {**scan_a.pixels, **scan_b.pixels}
    if _estimate_mb(all_infos) <= cache_mb:
        for info in all_infos:
            if info.path not in cache:
                cache[info.path] = read_image(info.path)
    else:
        cache = {}

    half_a, half_b = ("left", "right") if layout == "side_by_side" else ("full", "full")
    if layout == "side_by_side":
        default_a, default_b = f"{a.name} left", f"{a.name} right"
    else:
        default_a, default_b = a_folder.name, b_folder.name
        if default_a == default_b:
            default_a, default_b = "A", "B"
    dom_a = _make_domain(name_a or default_a, a_folder, scan_a, "--a", crop, half_a, cache,
                         norms[0] if norms else None)
    dom_b = _make_domain(name_b or default_b, b_folder, scan_b, "--b", crop, half_b, cache,
                         norms[1] if norms else None)
    dataset = ChipDataset(dom_a, dom_b, crop, layout, augment, cache)
    log.info("training data: %d chips of %s (%d bands %s), %d of %s (%d bands %s), %s%s",
             len(dom_a.files), dom_a.name, dom_a.bands, dom_a.dtype, len(dom_b.files),
             dom_b.name, dom_b.bands, dom_b.dtype, layout,
             ", cached in memory" if cache else "")
    return TrainingData(dataset, dom_a, dom_b, layout)
