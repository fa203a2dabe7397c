"""Blending window outputs into finished raster rows, one window row at a time, on the device.

The accumulator holds only the rows of the current window row (``tile`` rows by the
raster width), so its memory depends on ``tile`` and the width, not the raster's height.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from geogan.blend import AxisLayout, blend_weights
from geogan.normalize import BandNorm
from geogan.translate.tensors import from_model, norm_tensors

if TYPE_CHECKING:
    import torch

#: Columns de-normalised at a time when a block of rows is finished.
_FINISH_COLUMNS = 2048


class Stitcher:
    """Sums blended window outputs ``(C, tile, tile)`` and hands back finished raster rows.

    Windows arrive window row by window row (see :class:`~geogan.blend.AxisLayout`).
    :meth:`weigh` applies the ``blend`` profile to a batch of generator outputs,
    :meth:`add` sums one window into the current window row :attr:`row`, and
    :meth:`finish` divides the rows that no later window touches by the summed weight,
    maps them to raster values of ``out_norm`` and moves on to the next window row.
    """

    def __init__(self, ax: AxisLayout, ay: AxisLayout, blend: str, out_norm: BandNorm,
                 device: str) -> None:
        import torch

        self.ax, self.ay = ax, ay
        self.device = device
        self.width = ax.length
        w1 = blend_weights(ax.tile, ax.overlap, blend)
        self.weights = torch.from_numpy(np.outer(w1, w1).astype(np.float32)).to(device)  # (T, T)
        self._inv_wx = torch.from_numpy((1.0 / ax.weight_totals(w1)).astype(np.float32)).to(
            device)  # (W,)
        self._inv_wy = (1.0 / ay.weight_totals(w1)).astype(np.float32)  # (H,)
        self._lo, self._span = norm_tensors(out_norm, device)
        self._dtype = np.dtype(out_norm.dtype)
        self._bands = out_norm.bands
        self._acc = torch.zeros((out_norm.bands, ax.tile, self.width), dtype=torch.float32,
                                device=device)  # (C, T, W)
        #: The window row being accumulated.
        self.row = 0

    def weigh(self, y: torch.Tensor) -> torch.Tensor:
        """Generator outputs ``(n, C, T, T)`` clamped to ``[-1, 1]`` and weighted, in place."""
        return y.clamp_(-1.0, 1.0).mul_(self.weights)

    def add(self, c: int, window: torch.Tensor) -> None:
        """Add the weighted output ``(C, T, T)`` of window ``c`` of the current window row."""
        x0 = self.ax.start(c)
        a, b = max(x0, 0), min(x0 + self.ax.tile, self.width)
        self._acc[:, :, a:b] += window[:, :, a - x0:b - x0]

    def finish(self) -> tuple[int, int, np.ndarray]:
        """Finish the current window row: ``(row, first raster row, rows (C, n, W))``.

        The rows are those no later window touches, in the output dtype; the
        accumulator then moves on to the next window row.
        """
        import torch

        r, ay, acc = self.row, self.ay, self._acc
        y0 = ay.start(r)
        f0 = 0 if r == 0 else y0
        f1 = ay.final_end(r)
        wy = torch.from_numpy(self._inv_wy[f0:f1]).to(self.device)[None, :, None]  # (1, rows, 1)
        rows = np.empty((self._bands, f1 - f0, self.width), dtype=self._dtype)
        for c0 in range(0, self.width, _FINISH_COLUMNS):  # bounded temporaries
            c1 = min(c0 + _FINISH_COLUMNS, self.width)
            y = acc[:, f0 - y0:f1 - y0, c0:c1] * wy  # (C, rows, cols), a new tensor
            y.mul_(self._inv_wx[None, None, c0:c1])
            rows[:, :, c0:c1] = from_model(y, self._lo, self._span, self._dtype)
        if r < ay.count - 1:
            ov = self.ax.overlap
            if ov:
                acc[:, :ov] = acc[:, ay.stride:].clone()
            acc[:, ov:] = 0.0
        self.row += 1
        return r, f0, rows
