"""Sinks: where the finished rows of a translation go.

The translation engine (:mod:`geogan.translate.engine`) hands each block of finished
rows, as :class:`Rows`, to every sink of the translation, in order from top to bottom,
and calls :meth:`Sink.finish` once the last rows were handed over. A sink is opened
(and closed) in the engine's writer thread from a :class:`SinkTarget`. Today's sink is
:class:`RasterRows`, which writes into a GDAL dataset in block-aligned chunks, and the
writer of every format (:class:`GdalWriter`: atomic temporary, then that sink) is GDAL's;
a format GDAL does not write is one writer class more, registered in :data:`WRITERS`
under the ``writer`` of its row in :data:`geogan.contract.formats.OUTPUT_FORMATS`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from geogan.sink.gdal import BLOCK_SIZE, atomic_raster, open_for_write

if TYPE_CHECKING:
    from geogan.contract.formats import OutputFormat
    from geogan.fileio import OutputGroup
    from geogan.rasterio_meta import RasterMeta


@dataclass(frozen=True)
class Rows:
    """Finished rows of a translation: the output's values from raster row ``row``.

    ``values`` are ``(bands, n, width)`` in the output's dtype with the output's nodata
    applied; ``valid`` is ``(n, width)``, True where the input had data (None: all
    pixels); ``col`` is the first raster column (0: the rows span the raster).
    ``layers`` holds further per-pixel ``(n, width)`` arrays computed with the
    translation, by name, for the sinks that write them.
    """

    row: int
    values: np.ndarray
    valid: np.ndarray | None = None
    col: int = 0
    layers: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.values.shape[1])

    @property
    def width(self) -> int:
        return int(self.values.shape[2])


class Sink(Protocol):
    """Receives the finished rows of one translation, top to bottom."""

    def write(self, rows: Rows) -> None:
        """Take ``rows`` (the next ones down the raster)."""

    def finish(self) -> None:
        """Write what is still held; no rows follow."""


class SinkTarget(Protocol):
    """A sink still to be opened: the engine's writer thread opens it, writes, closes it."""

    def open(self) -> AbstractContextManager[Sink]:
        """The open sink; leaving the context closes it (on an error too)."""


class RasterRows:
    """A :class:`Sink` that writes into an open rasterio dataset ``dst``.

    Rows are kept until whole blocks of :data:`~geogan.sink.gdal.BLOCK_SIZE` rows can be
    written. ``pick`` turns :class:`Rows` into the dataset's bands (default:
    ``rows.values``); ``fill`` (the dataset's nodata) is written where a pixel is not
    valid. Validity is written as the dataset's mask when it has no nodata value.
    """

    def __init__(self, dst: Any, pick: Callable[[Rows], np.ndarray] | None = None,
                 fill: float | None = None) -> None:
        self.dst = dst
        self.pick = pick
        self.fill = fill
        self.masked = dst.nodata is None
        self.buf: np.ndarray | None = None  # (C, rows, w): rows waiting for a block
        self.valid_buf: np.ndarray | None = None  # (rows, w): their validity, if a mask
        self.start = 0  # raster row of buf[:, 0]
        self.col = 0
        self.filled = 0

    def write(self, rows: Rows) -> None:
        data = rows.values if self.pick is None else self.pick(rows)
        if self.fill is not None and rows.valid is not None:
            data = np.where(rows.valid[None], data, np.asarray(self.fill, data.dtype))
        if self.buf is not None and (rows.col != self.col or rows.width != self.buf.shape[2]):
            self.finish()  # another strip of columns begins
            self.buf = self.valid_buf = None
        if self.buf is None:
            self.start, self.col, self.filled = rows.row, rows.col, 0
            self.buf = np.empty((data.shape[0], BLOCK_SIZE + rows.height, rows.width),
                                dtype=data.dtype)
        if rows.row != self.start + self.filled:
            raise RuntimeError(f"rows {rows.row} arrived out of order")
        n = rows.height
        self._make_room(n)
        self.buf[:, self.filled:self.filled + n] = data
        if rows.valid is not None and self.masked:  # masked in -> masked out
            if self.valid_buf is None:
                self.valid_buf = np.empty(self.buf.shape[1:], dtype=np.uint8)
            self.valid_buf[self.filled:self.filled + n] = np.where(rows.valid, 255, 0)
        self.filled += n
        self._flush(final=False)

    def finish(self) -> None:
        if self.buf is not None:
            self._flush(final=True)

    def _make_room(self, n: int) -> None:
        assert self.buf is not None
        if self.filled + n <= self.buf.shape[1]:
            return
        grown = np.empty((self.buf.shape[0], self.filled + n + BLOCK_SIZE, self.buf.shape[2]),
                         dtype=self.buf.dtype)
        grown[:, :self.filled] = self.buf[:, :self.filled]
        self.buf = grown
        if self.valid_buf is not None:
            valid = np.empty(grown.shape[1:], dtype=np.uint8)
            valid[:self.filled] = self.valid_buf[:self.filled]
            self.valid_buf = valid

    def _flush(self, final: bool) -> None:
        from rasterio.windows import Window

        buf, filled = self.buf, self.filled
        assert buf is not None
        n = filled if final else (filled // BLOCK_SIZE) * BLOCK_SIZE
        if n == 0:
            return
        window = Window(self.col, self.start, buf.shape[2], n)
        self.dst.write(buf[:, :n], window=window)
        rest = filled - n
        buf[:, :rest] = buf[:, n:filled]  # rest < BLOCK_SIZE <= n: no overlap
        if self.valid_buf is not None:
            self.dst.write_mask(self.valid_buf[:n], window=window)
            self.valid_buf[:rest] = self.valid_buf[n:filled]
        self.start += n
        self.filled = rest


@dataclass(frozen=True)
class GdalTarget:
    """A :class:`SinkTarget` for a raster GDAL creates: ``path`` with ``profile``.

    ``final`` names the user's file in errors; ``meta`` (band meaning, tags with the
    provenance) is written onto it; ``pick`` and ``fill`` as for :class:`RasterRows`.
    """

    path: Path
    profile: dict[str, Any]
    final: Path | None = None
    meta: RasterMeta | None = None
    pick: Callable[[Rows], np.ndarray] | None = None
    fill: float | None = None

    @contextlib.contextmanager
    def open(self) -> Iterator[Sink]:
        from geogan.rasterio_meta import write_meta

        with open_for_write(self.path, self.profile, self.final) as dst:
            if self.meta is not None:
                write_meta(dst, self.meta)
            yield RasterRows(dst, self.pick, self.fill)


class GdalWriter:
    """How every format GDAL writes is written: atomically
    (:func:`~geogan.sink.gdal.atomic_raster`), then row by row through a
    :class:`GdalTarget`. A format GDAL does not write is one class like this one more,
    registered in :data:`WRITERS` under its row's ``writer``."""

    def atomic(self, path: Path, fmt: OutputFormat, config: Any,
               group: OutputGroup | None = None,
               compress: str | None = None) -> AbstractContextManager[Path]:
        """The temporary to write ``path`` to, renamed onto it once complete (see
        :func:`~geogan.sink.gdal.atomic_raster`; ``config`` gives ``overwrite``, ``cog``,
        ``compress`` and ``creation_options``)."""
        copy_of = fmt.driver if fmt.write == "copy" and fmt.option is None else "GTiff"
        return atomic_raster(path, overwrite=config.overwrite, cog=fmt.option == "cog",
                             compress=compress or config.compress, driver=copy_of,
                             creation_options=config.creation_options if compress is None
                             else (), group=group)

    def target(self, tmp: Path, profile: dict[str, Any], final: Path,
               meta: RasterMeta | None = None, pick: Callable[[Rows], np.ndarray] | None = None,
               fill: float | None = None) -> SinkTarget:
        """The sink that writes ``tmp`` (``final`` names it in errors)."""
        return GdalTarget(tmp, profile, final, meta, pick, fill)


#: The writer of each output format, by the ``writer`` of its row in
#: :data:`geogan.contract.formats.OUTPUT_FORMATS`.
WRITERS: dict[str, GdalWriter] = {"gdal": GdalWriter()}
