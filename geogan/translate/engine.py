"""The threaded pipeline that translates one raster: reader thread, generator, writer thread.

The raster is cut into overlapping windows (see :mod:`geogan.blend` for the
layout); windows reaching past the raster edge are filled by reflection. Each
window goes through the generator and is blended into the current window row by a
:class:`~geogan.translate.stitch.Stitcher`; as soon as a window row is done, the
rows no later window touches are handed to the writer. Peak memory therefore
depends on ``tile`` and the raster width, not its height; a very wide raster is
translated in vertical strips (:mod:`~geogan.translate.strips`), so not on its width either.

Three threads overlap the work: a reader (GDAL reads, reflection padding,
batching), the caller's thread (device transfer, normalisation, the generator,
blending on the device) and a writer (nodata, then the sinks of :mod:`geogan.sink`: the
output's GDAL writes and compression, and any raster written beside it). With a
confidence raster (:mod:`geogan.translate.confidence`) the caller's thread also measures
each batch's confidence and blends it like the output, into ``Rows.layers``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from geogan import normstats
from geogan.blend import AxisLayout
from geogan.checkpoint import LoadedGenerator
from geogan.devices import autocast
from geogan.errors import CheckpointError, InputError, first_line
from geogan.normstats import NormStats
from geogan.progress import CancelCheck, ProgressCallback, check_cancel
from geogan.sink.rows import GdalTarget, Rows, SinkTarget
from geogan.translate.compat import open_input
from geogan.translate.config import TranslateConfig
from geogan.translate.nodata import apply_nodata
from geogan.translate.runtime import (
    prepare_module,
    resolve_batch_size,
    resolve_precision,
)
from geogan.translate.stitch import Stitcher
from geogan.translate.strips import Strip, StripAxis, plan_job_strips
from geogan.translate.tensors import TORCH_DTYPES, norm_tensors, to_model
from geogan.translate.workers import POLL_S, Stop, Worker, get_checked, put, put_checked

if TYPE_CHECKING:
    from geogan.rasterio_meta import RasterMeta
    from geogan.translate.confidence import ConfidenceLayer, ConfidenceSetup
    from geogan.translate.subset import Subset

log = logging.getLogger(__name__)

#: Items waiting between threads (each a batch of windows or a block of output rows).
QUEUE_DEPTH = 2


class Job:
    """One raster through reader thread -> generator (caller's thread) -> writer thread."""

    def __init__(self, generator: LoadedGenerator, input_path: Path, indexes: list[int],
                 src_nodata: float | None, out_nodata: float | None, profile: dict[str, Any],
                 config: TranslateConfig, device: str, progress: ProgressCallback | None,
                 cancel: CancelCheck | None, meta: RasterMeta | None = None,
                 masked: bool = False, norm_stats: NormStats | None = None,
                 source: Path | None = None, region: Subset | None = None,
                 confidence: ConfidenceSetup | None = None) -> None:
        self.gen = generator
        self.confidence = confidence  # computed with the translation (geogan.translate.confidence)
        self.source = source or input_path  # what is read: the input, or a view of a part
        self.region = region  # the part translated, whose AOI masks pixels outside it
        self.meta = meta
        self.masked = masked  # the input has a per-dataset mask or alpha, not only nodata
        self.norm_stats = norm_stats
        self.input_path = input_path
        self.indexes = indexes
        self.src_nodata = src_nodata
        self.out_nodata = out_nodata
        self.profile = profile
        self.config = config
        self.device = device
        self.progress = progress
        self.cancel = cancel
        self.width = int(profile["width"])
        self.height = int(profile["height"])
        self.ax = AxisLayout(self.width, config.tile, config.overlap)
        self.ay = AxisLayout(self.height, config.tile, config.overlap)
        self.batch_size = resolve_batch_size(config.batch_size, device)
        self.precision = resolve_precision(config.precision, device)
        self.what = f"translation of {input_path.name}"
        self.valid_pixels = 0  # counted by the reader where the input has nodata
        # vertical strips translated one after another (one unless the raster is very wide)
        self.strips: list[Strip] = plan_job_strips(self)

    def _non_finite_message(self) -> str:
        """Why the generator may have produced NaN or infinite values, and what to try."""
        cause = "the checkpoint's weights may be broken: use another checkpoint"
        if self.config.stats:  # values within float32 that still overflow the network
            cause = (f"the statistics in {self.config.stats} or the checkpoint's weights may "
                     "be out of range: write the statistics again with `save_stats` or use "
                     "another checkpoint")
        return (f"the {self.gen.direction} generator produced NaN or infinite values on "
                f"{self.input_path.name}; nothing was written ({cause}"
                + ("" if self.precision == "fp32" else ", or try `precision` fp32") + ")")

    # ---------------------------------------------------------------- reader thread

    def _read(self, q: queue.Queue[Any], stop: threading.Event) -> None:
        """Read window rows, pad by reflection, cut windows into batches ``(B, C, T, T)``."""
        import torch
        from rasterio.errors import RasterioIOError
        from rasterio.windows import Window

        ax, ay, t = self.ax, self.ay, self.config.tile
        pin = self.device.startswith("cuda")
        batch: list[np.ndarray] = []
        keys: list[tuple[int, int]] = []

        def emit() -> None:
            arr = np.stack(batch)  # (B, C, T, T)
            if self.config.compile and len(batch) < self.batch_size:  # static shapes
                arr = np.concatenate([arr, np.zeros((self.batch_size - len(batch),)
                                                    + arr.shape[1:], arr.dtype)])
            tensor = torch.from_numpy(arr)
            put(q, ("batch", list(keys), tensor.pin_memory() if pin else tensor), stop)
            batch.clear()
            keys.clear()

        need_mask = (self.src_nodata is not None or self.masked or self.out_nodata is not None
                     or (self.region is not None and self.region.area is not None))
        with open_input(self.source) as src:
            for k, r in itertools.product(range(len(self.strips)), range(ay.count)):
                if r == 0:  # a strip (geogan.translate.strips), from the top
                    part = self.strips[k]
                    x0, sw, r0, rw = part.x0, part.width, part.r0, part.read_width
                    cols = {c: ax.source_index(c) - r0 for c in part.windows}  # column read
                    plain = {c: bool(np.array_equal(cx, np.arange(cx[0], cx[0] + t)))
                             for c, cx in cols.items()}
                if stop.is_set():
                    raise Stop
                rows = ay.source_index(r)  # raster row of each window row, mirrored at edges
                f0 = 0 if r == 0 else ay.start(r)  # rows finished once this row is done
                f1 = ay.final_end(r)
                a, b = min(int(rows.min()), f0), max(int(rows.max()) + 1, f1)
                try:
                    data = src.read(self.indexes, window=Window(r0, a, rw, b - a))
                except RasterioIOError as exc:
                    raise InputError(f"{self.input_path} could not be read at rows {a}-{b} "
                                     f"({first_line(exc)}); check that the "
                                     "file is complete") from exc
                mask = (self._read_mask(src, data[:, f0 - a:f1 - a, x0 - r0:x0 - r0 + sw],
                                        Window(x0, f0, sw, f1 - f0)) if need_mask else None)
                put(q, ("rows", (k, r), mask), stop)
                cast = TORCH_DTYPES.get(str(data.dtype), "float32")
                if cast != str(data.dtype):
                    data = data.astype(cast)
                ry = rows - a
                if np.array_equal(ry, np.arange(ry[0], ry[0] + t)):
                    strip = data[:, ry[0]:ry[0] + t]  # (C, T, W), a view
                else:
                    strip = data[:, ry]  # edge rows: mirrored copy
                for c, cx in cols.items():
                    if plain[c]:
                        batch.append(strip[:, :, cx[0]:cx[0] + t])
                    else:
                        batch.append(strip[:, :, cx])  # edge columns: mirrored copy
                    keys.append((k, r, c))
                    if len(batch) == self.batch_size:
                        emit()
                del data, strip
        if batch:
            emit()
        put(q, ("end",), stop)

    def _read_mask(self, src: Any, data: np.ndarray, window: Any) -> np.ndarray | None:
        """Validity ``(rows, cols)`` of the output pixels in ``window`` (``data``: their
        values), inside the region when there is one; counted in :attr:`valid_pixels`."""
        from rasterio.errors import RasterioIOError

        from geogan.rasterio_meta import read_valid

        try:
            mask = read_valid(src, self.indexes, window, data, self.src_nodata, self.masked)
        except RasterioIOError as exc:
            f0, f1 = window.row_off, window.row_off + window.height
            raise InputError(f"the mask of {self.input_path} could not be read at "
                             f"rows {f0}-{f1} ({first_line(exc)}); check that the "
                             "file is complete") from exc
        if self.region is not None:
            inside = self.region.inside(window.row_off, window.height, window.col_off,
                                        window.width)
            if inside is not None:
                mask &= inside
        if mask is not None:
            self.valid_pixels += int(np.count_nonzero(mask))
        return mask

    # ---------------------------------------------------------------- writer thread

    def _write(self, targets: Sequence[SinkTarget], q: queue.Queue[Any],
               stop: threading.Event) -> None:
        """Apply nodata and hand finished rows to every sink (opened here, in this thread)."""
        x0 = self.strips[0].x0  # the strip written: its first column
        with contextlib.ExitStack() as stack:
            sinks = [stack.enter_context(target.open()) for target in targets]
            while True:
                try:
                    item = q.get(timeout=POLL_S)
                except queue.Empty:
                    if stop.is_set():
                        raise Stop from None
                    continue
                if item[0] == "end":
                    for sink in sinks:
                        sink.finish()
                    break
                if item[0] == "strip":  # the next strip, from the top (sinks see the column)
                    x0 = item[1].x0
                    continue
                _, f0, rows, mask, layers = item
                done = Rows(f0, apply_nodata(rows, mask, self.out_nodata), mask, col=x0,
                            layers=layers)
                for sink in sinks:
                    sink.write(done)
                if stop.is_set():
                    raise Stop

    # ---------------------------------------------------------------- caller's thread

    def run(self, sinks: Path | Sequence[SinkTarget], final: Path | None = None) -> None:
        """Translate into ``sinks`` (see :mod:`geogan.sink.rows`), or into the new GeoTIFF
        ``sinks`` with this job's profile and meta (``final`` names it in errors)."""
        import torch

        if isinstance(sinks, Path):
            sinks = [GdalTarget(sinks, self.profile, final or sinks, self.meta)]
        targets = list(sinks)
        stop = threading.Event()
        in_q: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_DEPTH)
        out_q: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_DEPTH)
        reader = Worker("geogan-reader", lambda: self._read(in_q, stop))
        writer = Worker("geogan-writer", lambda: self._write(targets, out_q, stop))
        log.debug("%s: %dx%d px, %dx%d windows of %d px, overlap %d, batch %d, %s %s",
                  self.input_path, self.width, self.height, self.ax.count, self.ay.count,
                  self.config.tile, self.config.overlap, self.batch_size, self.device,
                  self.precision)
        reader.start()
        writer.start()
        try:
            with torch.inference_mode():
                self._infer(in_q, out_q, reader, writer)
            put_checked(out_q, ("end",), writer, self.cancel, self.what)
            while writer.is_alive():
                writer.join(POLL_S)
            if writer.error is not None:
                raise writer.error
        except BaseException:
            stop.set()
            raise
        finally:
            stop.set()
            reader.join()
            writer.join()

    def _confidence_layer(self, k: int) -> ConfidenceLayer | None:
        """The confidence accumulator of strip ``k`` when this translation writes one."""
        if self.confidence is None:
            return None
        from geogan.translate.confidence import ConfidenceLayer

        return ConfidenceLayer(self.confidence, StripAxis(self.ax, self.strips[k]), self.ay,
                               self.config.blend, self.device)

    def _confidence(self, conf: ConfidenceLayer, x: Any, y: Any,
                    keys: list[tuple[int, int, int]], amp: Any) -> Any:
        """The weighted confidence ``(n, 1, T, T)`` of a batch, with its windows' origins."""
        origins = [(self.ay.start(r), self.ax.start(c)) for _, r, c in keys]
        with amp:
            return conf.weigh(x, y, origins)

    def _infer(self, in_q: queue.Queue[Any], out_q: queue.Queue[Any], reader: Worker,
               writer: Worker) -> None:
        import torch

        ax, ay, t, dev = self.ax, self.ay, self.config.tile, self.device
        gen = self.gen
        norm = None  # instance norm with given statistics (--norm global|dense)
        if self.norm_stats is not None:
            norm = normstats.prepared_for(gen.module)
            norm.load(self.norm_stats, dev)
        dense = norm is not None and self.norm_stats is not None and self.norm_stats.mode == "dense"
        module = prepare_module(norm.module if norm else gen.module, dev, self.config.compile)
        strip = 0  # the strip being stitched (see geogan.translate.strips)
        stitch = Stitcher(StripAxis(ax, self.strips[0]), ay, self.config.blend, gen.out_norm, dev)
        conf = self._confidence_layer(0)
        in_lo, in_span = norm_tensors(gen.in_norm, dev)
        c_out = gen.out_bands
        amp = autocast(self.precision, dev)
        channels_last = dev.startswith("cuda")
        masks: dict[tuple[int, int], np.ndarray | None] = {}
        total_windows = sum(len(s.windows) for s in self.strips) * ay.count
        total_mpx = self.width * self.height / 1e6
        done_windows = 0
        started = time.perf_counter()

        def send(r: int, f0: int, rows: np.ndarray) -> None:
            layers = conf.finish() if conf is not None else {}
            put_checked(out_q, ("rows", f0, rows, masks.pop((strip, r)), layers), writer,
                        self.cancel, self.what)

        while True:
            item = get_checked(in_q, reader, self.cancel, self.what)
            if item[0] == "rows":
                masks[item[1]] = item[2]
                continue
            if item[0] == "end":
                send(*stitch.finish())
                return
            _, keys, raw = item
            n = len(keys)
            x = raw.to(dev, non_blocking=True).to(torch.float32)
            x = to_model(x, in_lo, in_span)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if dense:
                assert norm is not None
                origins = [(ay.start(r), ax.start(c)) for _, r, c in keys]
                norm.set_windows(origins + origins[-1:] * (x.shape[0] - n), t)
            with amp:
                y = module(x)
            y = y[:n].float()
            if tuple(y.shape) != (n, c_out, t, t):
                raise CheckpointError(f"the {gen.direction} generator turned windows of "
                                      f"{tuple(x.shape[1:])} into {tuple(y.shape[1:])}, expected "
                                      f"{(c_out, t, t)}; try another `tile`")
            if not bool(torch.isfinite(y).all()):
                raise CheckpointError(self._non_finite_message())
            cw = None if conf is None else self._confidence(conf, x[:n], y, keys, amp)
            y = stitch.weigh(y)  # (n, C, T, T)
            for i, (k, r, c) in enumerate(keys):
                if k != strip:  # the previous strip is done: on to the next
                    send(*stitch.finish())
                    strip = k
                    put_checked(out_q, ("strip", self.strips[k]), writer, self.cancel, self.what)
                    stitch = Stitcher(StripAxis(ax, self.strips[k]), ay, self.config.blend,
                                      gen.out_norm, dev)
                    conf = self._confidence_layer(k)
                while r != stitch.row:
                    send(*stitch.finish())
                stitch.add(c, y[i])
                if cw is not None:
                    conf.add(c, cw[i])
            done_windows += n
            check_cancel(self.cancel, self.what)
            if self.progress is not None:
                done = total_mpx * done_windows / total_windows
                elapsed = time.perf_counter() - started
                self.progress(done, total_mpx, mpx_s=done / elapsed if elapsed else 0.0)
