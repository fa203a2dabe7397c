"""Training data: folders of chips or images, checked up front, normalised, augmented.

Layouts read (``--a``/``--b`` of ``geogan train``):

- unpaired (CycleGAN): two folders of GeoTIFF chips written by ``geogan tile``, or of
  PNG/JPEG images (the ``trainA``/``trainB`` folders of the public CycleGAN data sets);
- paired (pix2pix): ``DIR/A/*.tif`` and ``DIR/B/*.tif`` with equal file names as
  written by ``geogan tile --pair`` (give ``--a DIR``, or ``--a DIR/A --b DIR/B``);
- side by side (pix2pix): one folder of images holding A on the left half and B on the
  right half (the pix2pix ``maps``/``facades`` data sets), given as ``--a DIR`` alone.

Every file is checked before training starts (band count and dtype equal within a
domain, large enough for the crop, readable), so bad input fails at once with a
message naming the file. Per-band normalisation comes from
:meth:`geogan.normalize.BandNorm.from_samples` over the domain's chips, nodata ignored.

Augmentation suits overhead imagery, which has no "up": a random square crop,
horizontal and vertical flips and 90-degree rotations, the same for both sides of
a pair. Each sample's randomness comes from a seed that the sampler hands out with
its index (:class:`EpochSampler`), so the data seen at step N is the same whatever
the number of loader workers and after ``--resume``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler

from geogan.errors import InputError, first_line
from geogan.normalize import BandNorm

log = logging.getLogger(__name__)

RASTER_SUFFIXES = (".tif", ".tiff")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")
IMAGE_SUFFIXES = RASTER_SUFFIXES + PICTURE_SUFFIXES
#: At most this many chips per domain feed the normalisation statistics.
MAX_STAT_CHIPS = 64
#: Keep all chips in memory when they take at most this many MB (decoded).
DEFAULT_CACHE_MB = 1024

Half = str  # "full", "left" or "right" (side-by-side A|B images)


@dataclass(frozen=True)
class ImageInfo:
    """What training needs to know about one chip file."""

    path: Path
    bands: int
    dtype: str
    height: int
    width: int
    nodata: float | None


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


@dataclass
class TrainingData:
    """The dataset of ``{"A": (C, crop, crop), "B": ...}`` samples and its two domains."""

    dataset: ChipDataset
    a: Domain
    b: Domain
    layout: str  # "unpaired", "paired" or "side_by_side"
    extra: dict[str, Any] = field(default_factory=dict)


# -- reading ------------------------------------------------------------------------------

def list_images(folder: Path, option: str) -> list[Path]:
    """Image files under ``folder`` (recursively, hidden ones skipped), sorted."""
    folder = Path(folder)
    if not folder.exists():
        raise InputError(f"{option} folder {folder} does not exist; check the path")
    if not folder.is_dir():
        raise InputError(f"{option} {folder} is not a folder; give the folder of chips")
    files = sorted(p for p in folder.rglob("*")
                   if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    if not files:
        raise InputError(f"{option} folder {folder} holds no .tif, .png or .jpg images; "
                         "point it at the chips written by 'geogan tile'")
    return files


def _unreadable(path: Path, exc: BaseException) -> InputError:
    return InputError(f"chip {path} is unreadable ({first_line(exc)}); remove it or re-create "
                      "it with 'geogan tile'")


def read_image(path: Path) -> np.ndarray:
    """The pixels of a chip as ``(bands, height, width)`` in the file's dtype."""
    path = Path(path)
    try:
        if path.suffix.lower() in RASTER_SUFFIXES:
            import rasterio

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # plain TIFFs: NotGeoreferencedWarning
                from geogan.rasterio_meta import data_bands

                with rasterio.open(path) as src:
                    return src.read(list(data_bands(src)))  # alpha is a mask, not a band
        from PIL import Image

        with Image.open(path) as im:
            if im.mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif im.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV", "PA"):
                im = im.convert("L" if im.mode == "1" else "RGB")
            arr = np.asarray(im)
    except InputError:
        raise
    except Exception as exc:  # rasterio, PIL and OS errors alike
        raise _unreadable(path, exc) from exc
    return arr[None] if arr.ndim == 2 else np.ascontiguousarray(arr.transpose(2, 0, 1))


def read_valid_pixels(path: Path) -> np.ndarray | None:
    """``(H, W)`` booleans from a GeoTIFF chip's mask (per-dataset mask or alpha), else None.

    Nodata is left to the caller (it is the domain's); None means no mask beyond it.
    """
    path = Path(path)
    if path.suffix.lower() not in RASTER_SUFFIXES:
        return None
    import rasterio

    from geogan.rasterio_meta import data_bands, has_mask

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(path) as src:
                bands = data_bands(src)
                if not has_mask(src, bands):
                    return None
                return (src.read_masks(list(bands)) != 0).all(axis=0)
    except Exception as exc:
        raise _unreadable(path, exc) from exc


def inspect_image(path: Path) -> tuple[ImageInfo, np.ndarray | None]:
    """Bands, dtype, size and nodata of a chip, checking that it reads to the end.

    GeoTIFFs are checked by reading their last block; PNG/JPEG files are decoded
    whole (returned as the second item so callers may keep them).
    """
    path = Path(path)
    if path.suffix.lower() in RASTER_SUFFIXES:
        import rasterio

        from geogan.rasterio_io import check_readable
        from geogan.rasterio_meta import check_pixels, data_bands

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with rasterio.open(path) as src:
                    check_readable(src)
                    if len(set(src.dtypes)) > 1:
                        raise InputError(f"chip {path} mixes dtypes {sorted(set(src.dtypes))} "
                                         "across bands; convert it to one dtype")
                    bands = data_bands(src)
                    check_pixels(src, path, bands)
                    return ImageInfo(path, len(bands), src.dtypes[0], src.height, src.width,
                                     src.nodata), None
        except InputError:
            raise
        except Exception as exc:
            raise _unreadable(path, exc) from exc
    arr = read_image(path)
    return ImageInfo(path, arr.shape[0], str(arr.dtype), arr.shape[1], arr.shape[2], None), arr


def _half(arr: np.ndarray, half: Half) -> np.ndarray:
    """Left or right half of a side-by-side ``(C, H, W)`` image (or all of it)."""
    if half == "full":
        return arr
    w = arr.shape[2] // 2
    return arr[:, :, :w] if half == "left" else arr[:, :, w:2 * w]


def _half_mask(valid: np.ndarray | None, half: Half) -> np.ndarray | None:
    return None if valid is None else _half(valid[None], half)[0]


# -- scanning a domain --------------------------------------------------------------------

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
                             f"than --crop {crop}; pass a smaller --crop or re-tile with a "
                             f"larger --size")
    if len(nodatas) > 1:
        log.warning("chips of %s have different nodata values %s; using %s", option,
                    sorted(nodatas), min(nodatas))
    nodata = min(nodatas) if nodatas else None
    min_size = min(min(i.height, i.width // 2 if half != "full" else i.width) for i in infos)
    return first.bands, first.dtype, nodata, min_size


def _estimate_mb(infos: Sequence[ImageInfo]) -> float:
    return sum(i.bands * i.height * i.width * np.dtype(i.dtype).itemsize for i in infos) / 2**20


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


def _make_domain(name: str, folder: Path, scan: _Scan, option: str, crop: int, half: Half,
                 cache: dict[Path, np.ndarray], norm: BandNorm | None) -> Domain:
    bands, dtype, nodata, min_size = _check_domain(scan.infos, option, crop, half)
    if norm is None:
        files = [i.path for i in scan.infos]
        per_chip = bands * scan.infos[0].height * scan.infos[0].width
        n = max(1, min(MAX_STAT_CHIPS, len(files), 4_000_000 // max(per_chip, 1)))
        picks = [files[round(k * (len(files) - 1) / max(n - 1, 1))] for k in range(n)]
        samples = ((_half(cache[p] if p in cache else read_image(p), half),
                    _half_mask(read_valid_pixels(p), half))
                   for p in dict.fromkeys(picks))
        norm = BandNorm.from_samples(samples, dtype, nodata)
    elif norm.bands != bands or norm.dtype != dtype:
        raise InputError(f"chips of {option} ({folder}) have {bands} {dtype} bands but the run "
                         f"was trained on {norm.bands} {norm.dtype} bands; give the same data")
    return Domain(name, Path(folder), tuple(i.path for i in scan.infos), bands, dtype, nodata,
                  norm, half, min_size)


# -- the dataset --------------------------------------------------------------------------

@dataclass(frozen=True)
class AugmentParams:
    """One sample's crop window and dihedral transform."""

    y: int
    x: int
    flip_h: bool
    flip_v: bool
    rot90: int


def draw_augment(rng: np.random.Generator, height: int, width: int, crop: int,
                 augment: bool) -> AugmentParams:
    """A random crop, flips and rotation (or a centred crop when not augmenting)."""
    if not augment:
        return AugmentParams((height - crop) // 2, (width - crop) // 2, False, False, 0)
    y = int(rng.integers(0, height - crop + 1))
    x = int(rng.integers(0, width - crop + 1))
    flips = rng.random(2) < 0.5
    return AugmentParams(y, x, bool(flips[0]), bool(flips[1]), int(rng.integers(0, 4)))


def apply_augment(arr: np.ndarray, p: AugmentParams, crop: int) -> np.ndarray:
    """``(C, H, W)`` -> ``(C, crop, crop)``, cropped, flipped and rotated as ``p`` says."""
    out = arr[:, p.y:p.y + crop, p.x:p.x + crop]
    if p.flip_h:
        out = out[:, :, ::-1]
    if p.flip_v:
        out = out[:, ::-1, :]
    if p.rot90:
        out = np.rot90(out, p.rot90, axes=(1, 2))
    return np.ascontiguousarray(out)


class ChipDataset(Dataset):
    """Samples ``{"A": (Ca, crop, crop), "B": (Cb, crop, crop)}`` float32 in ``[-1, 1]``.

    Indexed by ``(index, seed)`` pairs from :class:`EpochSampler`; a plain ``index``
    uses the index as its seed. Unpaired data has ``max(len(A), len(B))`` samples
    per epoch, B drawn at random for each (as in CycleGAN); paired data one per pair.
    """

    def __init__(self, a: Domain, b: Domain, crop: int, layout: str, augment: bool = True,
                 cache: dict[Path, np.ndarray] | None = None) -> None:
        self.a = a
        self.b = b
        self.crop = crop
        self.layout = layout
        self.augment = augment
        self.cache = cache if cache is not None else {}

    def __len__(self) -> int:
        if self.layout == "unpaired":
            return max(len(self.a.files), len(self.b.files))
        return len(self.a.files)

    def _read(self, path: Path) -> np.ndarray:
        arr = self.cache.get(path)
        return read_image(path) if arr is None else arr

    def _pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if self.layout == "side_by_side":
            arr = self._read(self.a.files[index])
            return _half(arr, "left"), _half(arr, "right")
        return self._read(self.a.files[index]), self._read(self.b.files[index])

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, torch.Tensor]:
        index, seed = key if isinstance(key, tuple) else (int(key), int(key))
        rng = np.random.default_rng(seed)
        if self.layout == "unpaired":
            arr_a = self._read(self.a.files[index % len(self.a.files)])
            arr_b = self._read(self.b.files[int(rng.integers(len(self.b.files)))])
            pa = draw_augment(rng, arr_a.shape[1], arr_a.shape[2], self.crop, self.augment)
            pb = draw_augment(rng, arr_b.shape[1], arr_b.shape[2], self.crop, self.augment)
        else:
            arr_a, arr_b = self._pair(index)
            h = min(arr_a.shape[1], arr_b.shape[1])
            w = min(arr_a.shape[2], arr_b.shape[2])
            pa = pb = draw_augment(rng, h, w, self.crop, self.augment)
        a = self.a.norm.to_model(apply_augment(arr_a, pa, self.crop))
        b = self.b.norm.to_model(apply_augment(arr_b, pb, self.crop))
        return {"A": torch.from_numpy(a), "B": torch.from_numpy(b)}

    def preview_batch(self, n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` fixed centre crops of A and of B (evenly spread over the files) for previews."""
        saved, self.augment = self.augment, False
        try:
            count = len(self)
            picks = sorted({round(k * (count - 1) / max(n - 1, 1)) for k in range(min(n, count))})
            items = [self[(i, i)] for i in picks]
        finally:
            self.augment = saved
        if self.layout == "unpaired":  # show B chips spread over B, not random partners
            nb = len(self.b.files)
            b_picks = sorted({round(k * (nb - 1) / max(n - 1, 1)) for k in range(min(n, nb))})
            b_items = []
            for j in b_picks:
                arr = self._read(self.b.files[j])
                p = draw_augment(np.random.default_rng(0), arr.shape[1], arr.shape[2],
                                 self.crop, False)
                b_items.append(torch.from_numpy(self.b.norm.to_model(
                    apply_augment(arr, p, self.crop))))
            k = min(len(items), len(b_items))
            return (torch.stack([it["A"] for it in items[:k]]), torch.stack(b_items[:k]))
        return torch.stack([it["A"] for it in items]), torch.stack([it["B"] for it in items])


class _Length:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


class EpochSampler(Sampler[tuple[int, int]]):
    """One epoch of :class:`DistributedSampler` order, each index paired with its own seed.

    ``set_epoch(epoch, start)`` selects the epoch's shuffle and skips its first
    ``start`` samples of this rank (to resume mid-epoch). Seeds depend on the run
    seed, the epoch and the sample's position in the global order only.
    """

    def __init__(self, length: int, seed: int, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True) -> None:
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.inner = DistributedSampler(_Length(length), num_replicas=world_size, rank=rank,
                                        shuffle=shuffle, seed=seed, drop_last=True)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch = epoch
        self.start = start
        self.inner.set_epoch(epoch)

    def __len__(self) -> int:
        return max(len(self.inner) - self.start, 0)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = list(self.inner)
        for pos in range(self.start, len(order)):
            global_pos = pos * self.world_size + self.rank
            seed = int(np.random.SeedSequence([self.seed, self.epoch, global_pos])
                       .generate_state(1)[0])
            yield order[pos], seed

    @property
    def per_rank(self) -> int:
        """Samples this rank sees in a full epoch."""
        return len(self.inner)


# -- putting it together ------------------------------------------------------------------

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
                         "by 'geogan tile --pair'")
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
        raise InputError(f"--crop must be positive, got {crop}")
    if model == "cyclegan":
        if b is None:
            raise InputError("CycleGAN needs two folders: pass --a FOLDER_A --b FOLDER_B")
        for opt, folder in (("--a", a), ("--b", b)):
            if folder.is_dir() and _paired_layout(folder):
                raise InputError(f"{opt} {folder} holds A/ and B/ subfolders; pass "
                                 f"--a {folder / 'A'} --b {folder / 'B'}")
            if folder.is_dir() and (folder / "trainA").is_dir():
                raise InputError(f"{opt} {folder} holds trainA/ and trainB/ subfolders; pass "
                                 f"--a {folder / 'trainA'} --b {folder / 'trainB'}")
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
        raise InputError(f"unknown --model {model!r}; choose cyclegan or pix2pix")

    scan_a = _Scan(a_files)
    scan_b = scan_a if layout == "side_by_side" else _Scan(b_files)
    if layout == "paired":
        for ia, ib in zip(scan_a.infos, scan_b.infos, strict=True):
            if (ia.height, ia.width) != (ib.height, ib.width):
                raise InputError(f"paired chips {ia.path} ({ia.width}x{ia.height}) and "
                                 f"{ib.path} ({ib.width}x{ib.height}) differ in size; "
                                 "re-create them with 'geogan tile --pair'")
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


def steps_per_epoch(n_samples: int, batch_size: int, world_size: int = 1) -> int:
    """Optimiser steps in one epoch (incomplete batches are dropped)."""
    return (n_samples // world_size) // batch_size


def seed_for(*parts: int) -> int:
    """A 32-bit seed from integers (run seed, rank, ...)."""
    return int(np.random.SeedSequence([abs(int(p)) for p in parts]).generate_state(1)[0])


__all__ = ["ChipDataset", "Domain", "EpochSampler", "ImageInfo", "TrainingData",
           "apply_augment", "draw_augment", "inspect_image", "list_images",
           "open_training_data", "read_image", "seed_for", "steps_per_epoch"]
