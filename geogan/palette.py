"""Maps as maps: the palette of a target domain of a few flat colours, and paletted output.

A map raster is a handful of flat colours. When the target domain of a training is
RGB with at most :data:`MAX_COLOURS` distinct colours covering at least
:data:`MIN_COVER` of its valid pixels (a map rendered to RGB), the checkpoint records
those colours as the domain's ``palette`` (:func:`detect_palette`). ``translate`` with
``palette`` on (or ``auto`` and a checkpoint with a palette) maps each output pixel to
the nearest palette colour (:func:`nearest_index`) and writes a one-band ``uint8``
GeoTIFF of colour indices with the colour table (:func:`colormap`), which QGIS shows as
a paletted (classified) raster. Index :data:`NODATA_INDEX` is nodata.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: At most this many colours make a palette.
MAX_COLOURS = 16
#: The palette's colours must cover at least this share of the valid pixels.
MIN_COVER = 0.99
#: The colour index written where the output has no data.
NODATA_INDEX = 255
#: Distinct colours counted at most before a domain is taken as continuous.
_MAX_DISTINCT = 1 << 16
#: Pixels read per file (decimated with nearest-neighbour, which keeps colours exact).
_SAMPLE_PX = 512 * 512
#: Files of a domain read at most.
_MAX_FILES = 32
#: Pixels compared with the palette at once in :func:`nearest_index`.
_CHUNK = 1 << 18


@dataclass(frozen=True)
class Palette:
    """The colours of a paletted domain, and their names if known.

    Detected colours come most frequent first; a palette read from a colour table
    (``origin``, :mod:`geogan.colortable`) holds the entries used in index order, with
    ``indices``, the colour index each colour is written as (default: its position).
    """

    colours: tuple[tuple[int, ...], ...]
    names: tuple[str, ...] | None = None
    origin: str | None = None
    indices: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not 1 <= len(self.colours) < NODATA_INDEX:
            raise ValueError(f"a palette has 1 to {NODATA_INDEX - 1} colours, "
                             f"not {len(self.colours)}")
        if len({len(c) for c in self.colours}) != 1:
            raise ValueError("the colours of a palette have different band counts")
        if self.names is not None and len(self.names) != len(self.colours):
            raise ValueError("a palette needs one name per colour")
        if self.indices is not None and (
                len(self.indices) != len(self.colours) or len(set(self.indices)) != len(
                    self.indices) or not all(0 <= i < NODATA_INDEX for i in self.indices)):
            raise ValueError(f"a palette needs one distinct index from 0 to {NODATA_INDEX - 1} "
                             "per colour")

    def codes(self) -> np.ndarray:
        """``(K,)`` uint8: the colour index each palette colour is written as."""
        if self.indices is None:
            return np.arange(len(self.colours), dtype=np.uint8)
        return np.asarray(self.indices, dtype=np.uint8)

    @property
    def bands(self) -> int:
        return len(self.colours[0])

    def array(self) -> np.ndarray:
        """``(K, bands)`` float64 colours."""
        return np.asarray(self.colours, dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"colours": [list(c) for c in self.colours]}
        if self.names is not None:
            out["names"] = list(self.names)
        if self.origin is not None:
            out["origin"] = self.origin
        if self.indices is not None:
            out["indices"] = list(self.indices)
        return out

    @classmethod
    def from_json(cls, d: Any) -> Palette:
        """A palette from its JSON; ValueError/TypeError/KeyError if malformed."""
        if not isinstance(d, dict) or not isinstance(d.get("colours"), list):
            raise TypeError("a domain's 'palette' has no 'colours' list")
        names, indices, origin = d.get("names"), d.get("indices"), d.get("origin")
        return cls(tuple(tuple(int(v) for v in c) for c in d["colours"]),
                   None if names is None else tuple(str(n) for n in names),
                   None if origin is None else str(origin),
                   None if indices is None else tuple(int(i) for i in indices))


def _keys(pixels: np.ndarray) -> np.ndarray:
    """One integer per pixel of ``(C, N)`` 8-bit colours."""
    keys = np.zeros(pixels.shape[1], dtype=np.int64)
    for band in pixels:
        keys = (keys << 8) | band.astype(np.int64)
    return keys


def detect_palette(samples: Iterable[tuple[np.ndarray, np.ndarray | None]], dtype: str,
                   max_colours: int = MAX_COLOURS, min_cover: float = MIN_COVER
                   ) -> Palette | None:
    """The palette of ``samples`` (``(C, h, w)`` pixels, ``(h, w)`` validity or None), or
    None when the domain is not 3-band 8-bit with at most ``max_colours`` colours
    covering ``min_cover`` of its valid pixels."""
    if str(dtype) != "uint8":
        return None
    counts: Counter[int] = Counter()
    for pixels, valid in samples:
        if pixels.ndim != 3 or pixels.shape[0] != 3:
            return None
        flat = pixels.reshape(pixels.shape[0], -1)
        if valid is not None:
            flat = flat[:, valid.reshape(-1)]
        keys, n = np.unique(_keys(flat), return_counts=True)
        counts.update(dict(zip(keys.tolist(), n.tolist(), strict=True)))
        if len(counts) > _MAX_DISTINCT:
            return None
    total = sum(counts.values())
    if total == 0:
        return None
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max_colours]
    covered, kept = 0, []
    for key, n in top:
        kept.append(key)
        covered += n
        if covered >= min_cover * total:
            break
    if covered < min_cover * total:
        return None
    return Palette(tuple(((k >> 16) & 255, (k >> 8) & 255, k & 255) for k in kept))


def _read_sample(path: Path, bands: Sequence[int], half: str) -> tuple[np.ndarray,
                                                                     np.ndarray | None]:
    import rasterio
    from rasterio.enums import Resampling

    from geogan.normalize import valid_mask

    with rasterio.open(path) as src:
        scale = max(1.0, (src.width * src.height / _SAMPLE_PX) ** 0.5)
        shape = (len(bands), max(1, int(src.height / scale)), max(1, int(src.width / scale)))
        data = src.read(list(bands), out_shape=shape, resampling=Resampling.nearest)
        valid = valid_mask(data, src.nodata)
        masks = src.read_masks(list(bands), out_shape=shape, resampling=Resampling.nearest)
        valid &= (masks != 0).all(axis=0)
    if half != "full":  # side-by-side A|B images: this domain's half
        w = data.shape[2] // 2
        cols = slice(0, w) if half == "left" else slice(w, 2 * w)
        data, valid = data[:, :, cols], valid[:, cols]
    return data, valid


def domain_palette(files: Sequence[Path], bands: Any, dtype: str, half: str = "full"
                   ) -> Palette | None:
    """The palette of a training domain's ``files`` (up to :data:`_MAX_FILES`, spread over
    them, each read decimated), or None when it is not paletted (see
    :func:`detect_palette`)."""
    if str(dtype) != "uint8" or not files:
        return None
    picks = bands if isinstance(bands, (list, tuple)) else list(range(1, int(bands) + 1))
    if len(picks) != 3:
        return None
    n = min(_MAX_FILES, len(files))
    chosen = list(dict.fromkeys(files[round(k * (len(files) - 1) / max(n - 1, 1))]
                                for k in range(n)))
    try:
        palette = detect_palette((_read_sample(p, picks, half) for p in chosen), dtype)
    except Exception as exc:  # a domain the sample cannot be read of is not paletted
        log.debug("no palette read from %s: %s", files[0], exc)
        return None
    if palette is not None:
        log.info("the target domain is a map of %d colours: the checkpoint records them as "
                 "its palette", len(palette.colours))
    return palette


def nearest_index(pixels: np.ndarray, palette: Palette) -> np.ndarray:
    """``(h, w)`` uint8: the index of the palette colour nearest (Euclidean) each pixel
    of ``pixels`` ``(C, h, w)``; ties go to the earlier (more frequent) colour."""
    if pixels.shape[0] != palette.bands:
        raise ValueError(f"{pixels.shape[0]} bands but the palette has {palette.bands}")
    colours = palette.array()  # (K, C)
    flat = pixels.reshape(pixels.shape[0], -1)
    out = np.empty(flat.shape[1], dtype=np.uint8)
    for start in range(0, flat.shape[1], _CHUNK):
        part = flat[:, start:start + _CHUNK].astype(np.float64)  # (C, n)
        dist = ((part[None] - colours[:, :, None]) ** 2).sum(axis=1)  # (K, n)
        out[start:start + _CHUNK] = dist.argmin(axis=0)
    return out.reshape(pixels.shape[1:])


def colormap(palette: Palette) -> dict[int, tuple[int, int, int, int]]:
    """rasterio's colour table of ``palette``; :data:`NODATA_INDEX` is transparent."""
    codes = palette.codes().tolist()
    table = {codes[i]: (*(int(v) for v in c[:3]), 255) for i, c in enumerate(palette.colours)}
    table[NODATA_INDEX] = (0, 0, 0, 0)
    return table
