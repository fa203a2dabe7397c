"""Chip and image files (GeoTIFF, PNG, JPEG): listing a folder of them, reading their pixels
and masks, and inspecting them before training."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geogan.errors import InputError, first_line

RASTER_SUFFIXES = (".tif", ".tiff")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")
IMAGE_SUFFIXES = RASTER_SUFFIXES + PICTURE_SUFFIXES

Half = str  # "full", "left" or "right" (side-by-side A|B images)

#: A picture's band layout by its band count, as PIL decodes PNG and JPEG files.
PICTURE_LAYOUTS = {1: "grayscale", 2: "grayscale+alpha", 3: "RGB", 4: "RGBA"}


@dataclass(frozen=True)
class ImageInfo:
    """What training needs to know about one chip file."""

    path: Path
    bands: int
    dtype: str
    height: int
    width: int
    nodata: float | None


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


def is_picture(path: Path) -> bool:
    """Whether ``path`` is a PNG or JPEG picture (not a GeoTIFF chip)."""
    return Path(path).suffix.lower() in PICTURE_SUFFIXES


def convert_picture(arr: np.ndarray, bands: int) -> np.ndarray:
    """``(C, H, W)`` picture pixels in the band layout of ``bands`` (1, 2, 3 or 4).

    Grayscale becomes RGB by repeating its band, RGB becomes grayscale by luminance
    (ITU-R 601-2 weights rounded as PIL's ``convert("L")`` does); an alpha band is
    dropped, or added fully opaque.
    """
    if arr.shape[0] == bands:
        return arr
    if arr.shape[0] not in PICTURE_LAYOUTS or bands not in PICTURE_LAYOUTS:
        raise ValueError(f"no picture layout of {arr.shape[0]} or {bands} bands")
    has_alpha = arr.shape[0] in (2, 4)
    colour = arr[:-1] if has_alpha else arr
    if bands >= 3 and colour.shape[0] == 1:
        colour = np.repeat(colour, 3, axis=0)
    elif bands <= 2 and colour.shape[0] == 3:
        colour = _luminance(colour)
    if bands in (2, 4):
        alpha = arr[-1:] if has_alpha else np.full_like(arr[:1], _opaque(arr.dtype))
        colour = np.concatenate([colour, alpha])
    return np.ascontiguousarray(colour)


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """``(3, H, W)`` -> ``(1, H, W)``: L = R 299/1000 + G 587/1000 + B 114/1000."""
    if np.issubdtype(rgb.dtype, np.integer):
        r, g, b = rgb.astype(np.int64)
        return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(rgb.dtype)[None]
    r, g, b = rgb.astype(np.float64)
    return (r * 0.299 + g * 0.587 + b * 0.114).astype(rgb.dtype)[None]


def _opaque(dtype: np.dtype) -> float:
    return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0


def read_image(path: Path, bands: int | None = None) -> np.ndarray:
    """The pixels of a chip as ``(bands, height, width)`` in the file's dtype.

    ``bands`` converts a PNG/JPEG picture of another band layout to that many bands
    (:func:`convert_picture`); GeoTIFF chips are returned as they are.
    """
    path = Path(path)
    arr = _read_pixels(path)
    if bands is not None and arr.shape[0] != bands and is_picture(path):
        return convert_picture(arr, bands)
    return arr


def _read_pixels(path: Path) -> np.ndarray:
    try:
        if path.suffix.lower() in RASTER_SUFFIXES:
            import rasterio

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # plain TIFFs: NotGeoreferencedWarning
                from geogan.colortable import chip_table, expand
                from geogan.rasterio_meta import data_bands

                with rasterio.open(path) as src:
                    table = chip_table(src)  # colour indices: read as their colours
                    if table is not None:
                        return expand(src.read(1), table)
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

    from geogan.colortable import chip_table, table_valid
    from geogan.rasterio_meta import data_bands, has_mask

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(path) as src:
                bands = data_bands(src)
                table = chip_table(src)  # colour indices: valid entries, and any mask
                valid = None if table is None else table_valid(src.read(1), table)
                if not has_mask(src, bands):
                    return valid
                masks = (src.read_masks(list(bands)) != 0).all(axis=0)
                return masks if valid is None else valid & masks
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

        from geogan.colortable import chip_table
        from geogan.limits import check_read_size
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
                    bands, dtype, nodata = data_bands(src), src.dtypes[0], src.nodata
                    if chip_table(src) is not None:  # colour indices, read as RGB colours
                        bands, dtype, nodata = (1, 2, 3), "uint8", None
                    else:
                        check_pixels(src, path, bands)
                    check_read_size(src.width, src.height, len(bands), f"chip {path}",
                                    "training reads a chip whole: cut it into smaller chips "
                                    "with geogan tile")
                    return ImageInfo(path, len(bands), dtype, src.height, src.width,
                                     nodata), None
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
