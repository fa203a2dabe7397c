"""Pure window maths for seamless windowed inference: window layout and blend weights.

Along each axis of a raster of ``length`` pixels, windows of ``tile`` pixels step
by ``stride = tile - overlap``. The grid is shifted by ``margin = overlap // 2``
so that the *cores* of the windows (the window less ``margin`` pixels before and
``overlap - margin`` after) tile the raster exactly::

    window i covers  [i * stride - margin, i * stride - margin + tile)
    core i covers    [i * stride, (i + 1) * stride)
    count            ceil(length / stride)

Pixels of a window that fall outside the raster are filled by reflection, so the
raster's first pixels sit ``margin`` pixels inside the first window, never on its
edge, and no pixel is dropped.

Each window's output is multiplied by a weight ``w(y) * w(x)`` and the sum over
windows is divided by the summed weight (which factorises into a row and a column
total, because every window uses the same profile). The profiles:

``cosine``
    1 in the middle, rising as ``sin^2`` over the first ``overlap`` pixels and
    falling as ``cos^2`` over the last (a Tukey window whose tapers are half Hann
    windows). Neighbouring tapers add up to exactly 1, so overlapping outputs
    cross-fade smoothly over ``overlap`` pixels.
``linear``
    The same with straight ramps (a trapezoid).
``none``
    1 on the core, 0 elsewhere: each pixel comes from exactly one window (the
    overlap only gives the network context), so tile seams can show.

Because the result is a weighted mean of window outputs, a generator whose output
equals its input reproduces the input exactly, whatever the profile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from geogan.contract import choices
from geogan.errors import InputError


class OverlapError(InputError, ValueError):
    """Windows that overlap by more than half their size."""


def check_overlap(tile: int, overlap: int) -> None:
    """The one overlap rule: ``0 <= 2 * overlap <= tile`` (each pixel in at most 2 windows/axis)."""
    if not 0 <= 2 * overlap <= tile:
        raise OverlapError(f"`overlap` must be between 0 and half the tile ({tile // 2}), "
                           f"got {overlap}")


@dataclass(frozen=True)
class AxisLayout:
    """Windows of ``tile`` pixels with ``overlap`` along one raster axis of ``length`` pixels."""

    length: int
    tile: int
    overlap: int

    def __post_init__(self) -> None:
        if self.length < 1:
            raise ValueError(f"length must be positive, got {self.length}")
        if self.tile < 1:
            raise ValueError(f"tile must be positive, got {self.tile}")
        check_overlap(self.tile, self.overlap)

    @property
    def stride(self) -> int:
        return self.tile - self.overlap

    @property
    def margin(self) -> int:
        """Pixels of the first window that lie before the raster (filled by reflection)."""
        return self.overlap // 2

    @property
    def count(self) -> int:
        """Number of windows: ``ceil(length / stride)``."""
        return math.ceil(self.length / self.stride)

    def start(self, i: int) -> int:
        """Raster coordinate of window ``i``'s first pixel (negative for the first window)."""
        return i * self.stride - self.margin

    def starts(self) -> list[int]:
        return [self.start(i) for i in range(self.count)]

    @property
    def padded_length(self) -> int:
        """Length of the reflection-padded axis that holds every window."""
        return (self.count - 1) * self.stride + self.tile

    @property
    def pad_after(self) -> int:
        """Pixels of the last window that lie after the raster (filled by reflection)."""
        return self.padded_length - self.margin - self.length

    def final_end(self, i: int) -> int:
        """End of the raster range that no window after ``i`` touches (the start of ``i + 1``)."""
        if i >= self.count - 1:
            return self.length
        return self.start(i + 1)

    def source_index(self, i: int) -> np.ndarray:
        """Raster pixel feeding each pixel of window ``i``, shape ``(tile,)``.

        Pixels past the raster's edges are mirrored about the edge pixel (numpy's
        "reflect": ``-1 -> 1``, ``length -> length - 2``), repeatedly when the
        raster is shorter than the padding.
        """
        return reflect_index(self.start(i), self.tile, self.length)

    def weight_totals(self, weights: np.ndarray) -> np.ndarray:
        """Sum over windows of the 1-D ``weights`` at each raster pixel, shape ``(length,)``."""
        total = np.zeros(self.length, dtype=np.float64)
        for s in self.starts():
            a, b = max(s, 0), min(s + self.tile, self.length)
            total[a:b] += weights[a - s:b - s]
        return total


def reflect_index(start: int, count: int, length: int) -> np.ndarray:
    """Indices ``start .. start + count - 1`` mirrored into ``[0, length)`` (numpy "reflect")."""
    k = np.arange(start, start + count)
    if length == 1:
        return np.zeros(count, dtype=np.int64)
    period = 2 * (length - 1)
    k = np.abs(k) % period
    return np.where(k < length, k, period - k)


def blend_weights(tile: int, overlap: int, kind: str = "cosine") -> np.ndarray:
    """1-D weight profile ``(tile,)`` of one window (see the module docstring)."""
    if kind not in choices.WINDOW_BLENDS:
        raise ValueError(f"unknown blend {kind!r}; choose one of "
                         f"{', '.join(choices.WINDOW_BLENDS)}")
    check_overlap(tile, overlap)
    w = np.ones(tile, dtype=np.float64)
    if overlap == 0:
        return w
    if kind == "none":
        margin = overlap // 2
        w[:margin] = 0.0
        w[tile - (overlap - margin):] = 0.0
        return w
    t = (np.arange(overlap, dtype=np.float64) + 0.5) / overlap  # (overlap,) in (0, 1)
    ramp = np.sin(0.5 * np.pi * t) ** 2 if kind == "cosine" else t
    w[:overlap] = ramp
    w[tile - overlap:] = np.minimum(w[tile - overlap:], ramp[::-1])
    return w
