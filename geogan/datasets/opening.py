"""Opening chip folders as training data: the layout found (unpaired, paired or side by side),
the chips checked, paired and cached, the two domains described."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geogan.contract.layouts import Layout, Pairing
from geogan.contract.options import TRAIN
from geogan.datasets.chips import ChipDataset
from geogan.datasets.domains import Domain, _make_domain, _Scan
from geogan.datasets.images import IMAGE_SUFFIXES, ImageInfo, list_images, read_image
from geogan.errors import InputError
from geogan.models.registry import data_pairing, paired_models
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
    layout: Layout  # what was found; the checkpoint's training.layout
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


#: pix2pix's ``direction`` values (junyanz's ``--direction``): BtoA swaps the roles of A and B.
DIRECTIONS: tuple[str, ...] = TRAIN["direction"].choices


def _paths(value: Path | Sequence[Path] | None) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [Path(value)]
    return [Path(v) for v in value]


def _find_scenes(root: Path) -> tuple[list[Path], list[Path]]:
    """Folders under ``root`` (not itself) with ``A/`` and ``B/`` sub-folders, not looked
    into, and the images outside them (hidden files and folders skipped)."""
    scenes: list[Path] = []
    outside: list[Path] = []
    for dirpath, dirnames, files in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if here != root and _paired_layout(here):
            scenes.append(here)
            dirnames[:] = []
            continue
        outside.extend(here / f for f in sorted(files)
                       if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES)
    return scenes, outside


def _scene_folders(root: Path, option: str) -> list[tuple[Path, Path]]:
    """The ``(A, B)`` folders of the ``geogan tile --pair`` outputs under ``root``, if any.

    Images under ``root`` outside every scene are an error, as the folder is then
    neither a set of scenes nor one of side-by-side images.
    """
    scenes, outside = _find_scenes(root)
    if not scenes:
        return []
    if outside:
        raise InputError(f"{option} {root} holds {len(scenes)} scene folders with A/ and B/ "
                         f"({scenes[0].relative_to(root)}, ...) and {len(outside)} images "
                         f"outside them (first: {outside[0]}); move those images out, or give "
                         "the scene folders with `a`")
    log.info("%s %s: %d scenes of A/B pairs (%s)", option, root, len(scenes),
             ", ".join(s.relative_to(root).as_posix() for s in scenes))
    return [(s / "A", s / "B") for s in scenes]


def _pix2pix_sources(folders_a: list[Path],
                     folders_b: list[Path]) -> tuple[Layout, list[tuple[Path, Path]]]:
    """A paired model's layout and its ``(A folder, B folder)`` pairs (side by side: one
    folder twice).

    Without ``b``, each ``a`` folder is a ``geogan tile --pair`` output (``A/``, ``B/``),
    a folder of such outputs (scenes), or a folder of side-by-side A|B images; with
    ``b``, the i-th ``a`` folder pairs with the i-th ``b`` folder.
    """
    if folders_b:
        if len(folders_b) != len(folders_a):
            raise InputError(f"`a` gives {len(folders_a)} chip folders and `b` "
                             f"{len(folders_b)}; pix2pix pairs the chips of the i-th folder "
                             "of `a` with those of the i-th of `b`")
        return Layout.PAIRED, list(zip(folders_a, folders_b, strict=True))
    paired: list[tuple[Path, Path]] = []
    side: list[Path] = []
    for folder in folders_a:
        direct = _paired_layout(folder) if folder.is_dir() else None
        scenes = [direct] if direct else (_scene_folders(folder, "`a`") if folder.is_dir()
                                          else [])
        if scenes:
            paired.extend(scenes)
        else:
            side.append(folder)
    if paired and side:
        raise InputError(f"`a` {side[0]} holds side-by-side A|B images but "
                         f"{paired[0][0].parent} holds A/ and B/ pairs; train on one kind")
    if paired:
        return Layout.PAIRED, paired
    return Layout.SIDE_BY_SIDE, [(f, f) for f in side]


def _common_folder(folders: Sequence[Path]) -> Path:
    try:
        return Path(os.path.commonpath([str(f) for f in folders]))
    except ValueError:  # relative and absolute paths mixed
        return folders[0]


def _default_name(folders: Sequence[Path], fallback: str) -> str:
    names = {f.name for f in folders}
    return names.pop() if len(names) == 1 else fallback


def _unpaired_sources(folders_a: list[Path], folders_b: list[Path],
                      direction: str) -> tuple[list[Path], list[Path], list[tuple[Path, Path]]]:
    """The chips of an unpaired model: one folder per domain, checked not to be paired."""
    if direction != DIRECTIONS[0]:
        raise InputError(f"`direction` {direction} needs paired data (`model` "
                         f"{paired_models()}); swap `a` and `b` to train the other way")
    if not folders_b:
        raise InputError("CycleGAN needs two folders: pass `a` FOLDER_A `b` FOLDER_B")
    if len(folders_a) > 1 or len(folders_b) > 1:
        raise InputError("CycleGAN reads one chip folder per domain; give one folder as "
                         "`a` and one as `b`")
    a_folder, b_folder = folders_a[0], folders_b[0]
    for opt, folder in (("`a`", a_folder), ("`b`", b_folder)):
        if folder.is_dir() and _paired_layout(folder):
            raise InputError(f"{opt} {folder} holds A/ and B/ subfolders; pass "
                             f"`a` {folder / 'A'} `b` {folder / 'B'}")
        if folder.is_dir() and _find_scenes(folder)[0]:
            raise InputError(f"{opt} {folder} holds scene folders with A/ and B/ pairs; "
                             f"train on them with `model` {paired_models()}, or give one "
                             "domain's chips to each of `a` and `b`")
        if folder.is_dir() and (folder / "trainA").is_dir():
            raise InputError(f"{opt} {folder} holds trainA/ and trainB/ subfolders; pass "
                             f"`a` {folder / 'trainA'} `b` {folder / 'trainB'}")
    return (list_images(a_folder, "`a`"), list_images(b_folder, "`b`"),
            [(a_folder, b_folder)])


def _paired_files(layout: Layout, sources: list[tuple[Path, Path]]
                  ) -> tuple[list[Path], list[Path]]:
    """The chips of a paired model, matched by name within each source."""
    a_files: list[Path] = []
    b_files: list[Path] = []
    for a_folder, b_folder in sources:  # pairs are matched within each source
        files = list_images(a_folder, "`a`")
        if layout is Layout.PAIRED:
            files, partners = _pair_files(a_folder, files, b_folder,
                                          list_images(b_folder, "`b`"))
            b_files.extend(partners)
        a_files.extend(files)
    return a_files, (a_files if layout is Layout.SIDE_BY_SIDE else b_files)


def _scan(layout: Layout, a_files: list[Path], b_files: list[Path],
          b_given: bool) -> tuple[_Scan, _Scan, str, str]:
    """The chips of both domains inspected (pairs checked for equal sizes), and the option
    each domain's chips came from."""
    scan_a = _Scan(a_files)
    scan_b = scan_a if layout is Layout.SIDE_BY_SIDE else _Scan(b_files)
    opt_a, opt_b = "`a`", "`a`" if layout is Layout.SIDE_BY_SIDE or not b_given else "`b`"
    scan_a.harmonise_pictures(opt_a)
    if scan_b is not scan_a:
        scan_b.harmonise_pictures(opt_b)
    if layout is Layout.PAIRED:
        for ia, ib in zip(scan_a.infos, scan_b.infos, strict=True):
            if (ia.height, ia.width) != (ib.height, ib.width):
                raise InputError(f"paired chips {ia.path} ({ia.width}x{ia.height}) and "
                                 f"{ib.path} ({ib.width}x{ib.height}) differ in size; "
                                 "re-create them with 'geogan tile `pair`'")
    return scan_a, scan_b, opt_a, opt_b


def _fill_cache(scan_a: _Scan, scan_b: _Scan, cache_mb: float) -> dict[Path, np.ndarray]:
    """Every chip decoded in memory when they take at most ``cache_mb``, else nothing."""
    all_infos = scan_a.infos + ([] if scan_b is scan_a else scan_b.infos)
    cache: dict[Path, np.ndarray] = {**scan_a.pixels, **scan_b.pixels}
    if _estimate_mb(all_infos) > cache_mb:
        return {}
    for info in all_infos:
        if info.path not in cache:
            cache[info.path] = read_image(info.path, info.bands)
    return cache


def _default_names(layout: Layout, sources: list[tuple[Path, Path]]) -> tuple[str, str]:
    if layout is Layout.SIDE_BY_SIDE:
        name = _default_name([s[0] for s in sources], "")
        return f"{name} left".strip(), f"{name} right".strip()
    default_a = _default_name([s[0] for s in sources], "A")
    default_b = _default_name([s[1] for s in sources], "B")
    return ("A", "B") if default_a == default_b else (default_a, default_b)


def _check_request(folders_a: list[Path], crop: int, direction: str) -> None:
    if not folders_a:
        raise InputError("`a` is required: a folder of chips")
    if crop < 1:
        raise InputError(f"`crop` must be positive, got {crop}")
    if direction not in DIRECTIONS:
        raise InputError(f"unknown `direction` {direction!r}; choose {' or '.join(DIRECTIONS)}")


def open_training_data(model: str, a: Path | Sequence[Path], b: Path | Sequence[Path] | None,
                       crop: int, *, augment: bool = True, name_a: str | None = None,
                       name_b: str | None = None,
                       norms: tuple[BandNorm, BandNorm] | None = None,
                       cache_mb: float = DEFAULT_CACHE_MB,
                       direction: str = DIRECTIONS[0]) -> TrainingData:
    """Find, check and describe the training chips of ``model`` (a model name, or the
    :class:`~geogan.contract.layouts.Pairing` it needs).

    A paired model takes several folders (``a`` alone, or ``a`` and ``b`` folder by
    folder); ``direction`` "BtoA" swaps its domains, so the model translates B to A.
    ``norms`` (when resuming) replaces the statistics with those the run started with
    and checks the chips still match them. Raises :class:`InputError` naming the file
    or folder at fault.
    """
    folders_a = [_train_split(f, "`a`") for f in _paths(a)]
    folders_b = [_train_split(f, "`b`") for f in _paths(b)]
    _check_request(folders_a, crop, direction)
    if data_pairing(model) is Pairing.UNPAIRED:
        layout = Layout.UNPAIRED
        a_files, b_files, sources = _unpaired_sources(folders_a, folders_b, direction)
    else:
        layout, sources = _pix2pix_sources(folders_a, folders_b)
        a_files, b_files = _paired_files(layout, sources)
    scan_a, scan_b, opt_a, opt_b = _scan(layout, a_files, b_files, bool(folders_b))
    cache = _fill_cache(scan_a, scan_b, cache_mb)
    folder_a = _common_folder([s[0] for s in sources])
    folder_b = _common_folder([s[1] for s in sources])
    half_a, half_b = ("left", "right") if layout is Layout.SIDE_BY_SIDE else ("full", "full")
    default_a, default_b = _default_names(layout, sources)
    if direction == "BtoA":  # the model translates B to A: B's chips are its domain A
        half_a, half_b = half_b, half_a
        default_a, default_b = default_b, default_a
        folder_a, folder_b = folder_b, folder_a
        opt_a, opt_b = opt_b, opt_a
        if scan_b is not scan_a:
            scan_a, scan_b = scan_b, scan_a
    dom_a = _make_domain(name_a or default_a, folder_a, scan_a, opt_a, crop, half_a, cache,
                         norms[0] if norms else None)
    dom_b = _make_domain(name_b or default_b, folder_b, scan_b, opt_b, crop, half_b, cache,
                         norms[1] if norms else None)
    dataset = ChipDataset(dom_a, dom_b, crop, layout, augment, cache)
    log.info("training data: %d chips of %s (%d bands %s), %d of %s (%d bands %s), %s%s%s",
             len(dom_a.files), dom_a.name, dom_a.bands, dom_a.dtype, len(dom_b.files),
             dom_b.name, dom_b.bands, dom_b.dtype, layout,
             ", B to A" if direction == "BtoA" else "",
             ", cached in memory" if cache else "")
    return TrainingData(dataset, dom_a, dom_b, layout)
