"""Chips written from a template: GDAL writes the first ones, the rest are the same bytes.

Every uncompressed chip of one source has the same GeoTIFF header (size, bands, CRS
geokeys, nodata, band meaning, tags) and differs from its neighbours only in its
pixels and in the two numbers of its origin (the ModelTiepoint X and Y). Creating a
file through rasterio and GDAL costs far more per chip than those bytes
(SRS conversions, option validation, Python around them), so a
:class:`ChipTemplate` lets GDAL write (:func:`~geogan.tiling.chips.write_chip`) the
first chips of a source, reads back the header of the first and then writes the rest
as that header, with the origin patched in, followed by the pixels.

It checks itself before it writes anything: the first chip must be one classic
little-endian TIFF whose strips hold exactly its pixels, band after band, to the end
of the file, with a tiepoint at pixel (0, 0) equal to the window origin and no
sidecar file; and the second chip, which GDAL also writes, must be byte for byte what
the template would have written. Otherwise (compression, ``--co`` options that change
the layout, rotated grids, PixelIsPoint, an unexpected GDAL) every chip is written by
GDAL as before. Chips with a mask or a valid-window tag are always written by GDAL.
A chip of colour indices carries its colour table and category names in that header
(the same for every chip of a source), so the template keeps them.
"""

from __future__ import annotations

import logging
import struct
import threading
from pathlib import Path
from typing import Any

import numpy as np

from geogan.fileio import write_error
from geogan.rasterio_meta import RasterMeta
from geogan.tiling.chips import write_chip

log = logging.getLogger(__name__)

#: Chips GDAL writes before the template is trusted (the 2nd is compared to the template).
PROBES = 2

_STRIP_OFFSETS, _STRIP_COUNTS = 273, 279
_TIEPOINT, _TRANSFORMATION = 33922, 34264
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}
_TYPE_FORMATS = {3: "H", 4: "I", 12: "d"}


class ChipTemplate:
    """Writes the plain chips of one source (one profile and band meaning), see module doc."""

    def __init__(self, profile: dict[str, Any], meta: RasterMeta | None) -> None:
        self.profile = profile
        self.meta = meta
        self._head: bytes | None = None
        self._tie_at = 0
        self._probes = 0
        self._on = False
        self._lock = threading.Lock()
        self.fast = 0  # chips written from the template (for logs and tests)
        self.usable = _eligible(profile, meta)

    @property
    def ready(self) -> bool:
        """Whether the next plain chip is written from the template."""
        return self._on

    def write(self, path: Path, data: np.ndarray, transform: Any,
              tags: dict[str, str], valid: np.ndarray | None) -> bool:
        """While the template is still learning, write a plain chip through GDAL (a probe)
        and learn from it; return whether the chip was written here.

        False means the caller writes it: from the template (:meth:`write_fast`) once
        :attr:`ready`, else through GDAL (a chip with tags or a mask, or a source
        whose chips cannot share a header).
        """
        with self._lock:
            if not self.usable or self._on or tags or valid is not None:
                return False
            write_chip(path, data, self.profile, transform, tags, self.meta, None)
            self._probe(path, data, transform)
            return True

    def write_fast(self, path: Path, data: np.ndarray, transform: Any) -> None:
        """Write a plain chip as the template's header with ``transform``'s origin, then pixels."""
        assert self._head is not None
        try:
            with open(path, "wb") as f:
                f.write(self._patched(transform))
                f.write(_pixels(data))
        except OSError as exc:
            raise write_error(path, exc) from exc
        with self._lock:
            self.fast += 1

    def _patched(self, transform: Any) -> bytes:
        assert self._head is not None
        head = bytearray(self._head)
        struct.pack_into("<dd", head, self._tie_at + 24, float(transform.c), float(transform.f))
        return bytes(head)

    def _probe(self, path: Path, data: np.ndarray, transform: Any) -> None:
        """Learn the header from the first chip, check the second against it."""
        self._probes += 1
        try:
            written = path.read_bytes()
        except OSError:
            self.usable = False
            return
        if Path(f"{path}.aux.xml").exists():
            self.usable = False
        elif self._head is None:
            layout = _layout(written, data, transform)
            if layout is None:
                self.usable = False
            else:
                self._head, self._tie_at = layout
        elif self._patched(transform) + bytes(_pixels(data)) == written:
            self._on = self._probes >= PROBES
            if self._on:
                log.debug("the next chips of %s are written from a template", path.parent)
        else:
            self.usable = False
        if not self.usable:
            log.debug("chips of this source are written by GDAL one by one (%s differs from "
                      "a template)", path)


def _eligible(profile: dict[str, Any], meta: RasterMeta | None) -> bool:
    """Profiles whose chips can share a header: uncompressed strips, north-up, PixelIsArea."""
    t = profile.get("transform")
    point = meta is not None and str(meta.tags.get("AREA_OR_POINT", "")).lower() == "point"
    return (profile.get("driver", "GTiff") == "GTiff"
            and str(profile.get("compress", "none")).lower() == "none"
            and not profile.get("tiled") and t is not None and t.b == 0 and t.d == 0
            and not point)


def _pixels(data: np.ndarray) -> memoryview:
    """The bytes of a ``(bands, rows, cols)`` chip as a strip TIFF holds them, band after band."""
    little = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<"))
    return little.reshape(-1).view(np.uint8).data


def _tags(buf: bytes) -> dict[int, tuple[int, int, int]] | None:
    """The tags of a classic little-endian TIFF with one IFD: ``{tag: (type, count, at)}``."""
    if len(buf) < 8 or buf[:4] != b"II*\x00":
        return None
    ifd = struct.unpack_from("<I", buf, 4)[0]
    if ifd + 2 > len(buf):
        return None
    n = struct.unpack_from("<H", buf, ifd)[0]
    end = ifd + 2 + 12 * n
    if end + 4 > len(buf) or struct.unpack_from("<I", buf, end)[0] != 0:
        return None  # a second IFD (mask, overview): not a plain chip
    tags = {}
    for i in range(n):
        tag, typ, count, value = struct.unpack_from("<HHII", buf, ifd + 2 + 12 * i)
        if typ not in _TYPE_SIZES:
            return None
        size = _TYPE_SIZES[typ] * count
        tags[tag] = (typ, count, ifd + 2 + 12 * i + 8 if size <= 4 else value)
    return tags


def _values(buf: bytes, entry: tuple[int, int, int]) -> tuple[Any, ...] | None:
    typ, count, at = entry
    fmt = _TYPE_FORMATS.get(typ)
    if fmt is None or at + _TYPE_SIZES[typ] * count > len(buf):
        return None
    return struct.unpack_from(f"<{count}{fmt}", buf, at)


def _layout(buf: bytes, data: np.ndarray, transform: Any) -> tuple[bytes, int] | None:
    """``(header, tiepoint offset)`` of a chip GDAL wrote, or None if it is not a plain one:
    its pixels must fill the file's end, band after band, and its tiepoint be the origin."""
    tags = _tags(buf)
    if tags is None or _TRANSFORMATION in tags or not {_STRIP_OFFSETS, _STRIP_COUNTS,
                                                          _TIEPOINT} <= tags.keys():
        return None
    offsets = _values(buf, tags[_STRIP_OFFSETS])
    counts = _values(buf, tags[_STRIP_COUNTS])
    tie = _values(buf, tags[_TIEPOINT])
    pixels = _pixels(data)
    if not offsets or not counts or tie is None or len(tie) != 6:
        return None
    start = offsets[0]
    contiguous = all(o == start + sum(counts[:i]) for i, o in enumerate(offsets))
    if not contiguous or start + sum(counts) != len(buf) or buf[start:] != pixels:
        return None
    tie_at = tags[_TIEPOINT][2]
    if tie[:3] != (0.0, 0.0, 0.0) or tie[3:5] != (float(transform.c), float(transform.f)) \
            or tie_at + 48 > start:
        return None
    return buf[:start], tie_at


def submit_chip(writer: Any, template: ChipTemplate, path: Path, data: np.ndarray,
                transform: Any, tags: dict[str, str], valid: np.ndarray | None) -> None:
    """Write one chip: from ``template`` when it is ready and the chip is plain, as a probe
    while it learns, else through GDAL; ``writer`` (a ChipWriter) runs the writes."""
    if template.ready and not tags and valid is None:
        writer.submit(template.write_fast, path, data, transform, nbytes=data.nbytes)
    elif not template.write(path, data, transform, tags, valid):
        writer.submit(write_chip, path, data, template.profile, transform, tags, template.meta,
                      valid, nbytes=data.nbytes)
