"""The blending accumulator on its own: window outputs in, finished raster rows out."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geogan.blend import AxisLayout, blend_weights
from geogan.contract.choices import WINDOW_BLENDS
from geogan.normalize import BandNorm
from geogan.translate.stitch import Stitcher

torch.set_num_threads(1)


def _stitch(stitch: Stitcher, windows: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
    """Feed ``windows`` ``(rows, cols, C, T, T)`` in raster order; collect the finished rows."""
    done = []
    for r in range(windows.shape[0]):
        y = stitch.weigh(torch.from_numpy(windows[r].copy()))
        for c in range(windows.shape[1]):
            while r != stitch.row:
                done.append(stitch.finish())
            stitch.add(c, y[c])
    done.append(stitch.finish())
    return done


def _reference(windows: np.ndarray, ax: AxisLayout, ay: AxisLayout, blend: str) -> np.ndarray:
    """The weighted mean of the clamped window outputs at each raster pixel, in float64."""
    w1 = blend_weights(ax.tile, ax.overlap, blend)
    bands = windows.shape[2]
    num = np.zeros((bands, ay.length, ax.length))
    den = np.zeros((ay.length, ax.length))
    for r, y0 in enumerate(ay.starts()):
        for c, x0 in enumerate(ax.starts()):
            w = np.outer(w1, w1)
            a, b = max(y0, 0), min(y0 + ay.tile, ay.length)
            e, f = max(x0, 0), min(x0 + ax.tile, ax.length)
            part = np.clip(windows[r, c], -1.0, 1.0) * w
            num[:, a:b, e:f] += part[:, a - y0:b - y0, e - x0:f - x0]
            den[a:b, e:f] += w[a - y0:b - y0, e - x0:f - x0]
    return num / den


@pytest.mark.parametrize("blend", WINDOW_BLENDS)
@pytest.mark.parametrize("width,height,tile,overlap", [(45, 37, 16, 6), (20, 50, 16, 0),
                                                       (7, 5, 8, 4)])
def test_finished_rows_are_the_weighted_mean_of_the_windows(blend, width, height, tile,
                                                            overlap):
    ax, ay = AxisLayout(width, tile, overlap), AxisLayout(height, tile, overlap)
    rng = np.random.default_rng(0)
    windows = rng.uniform(-1.2, 1.2, (ay.count, ax.count, 2, tile, tile)).astype(np.float32)
    norm = BandNorm("float32", (0.0, 0.0), (1.0, 1.0))  # raster value = (model value + 1) / 2
    done = _stitch(Stitcher(ax, ay, blend, norm, "cpu"), windows)
    assert [r for r, _, _ in done] == list(range(ay.count))
    starts = [f0 for _, f0, _ in done]
    heights = [rows.shape[1] for _, _, rows in done]
    assert starts == [sum(heights[:i]) for i in range(len(done))] and sum(heights) == height
    out = np.concatenate([rows for _, _, rows in done], axis=1)
    assert out.dtype == np.float32 and out.shape == (2, height, width)
    expected = (_reference(windows, ax, ay, blend) + 1.0) / 2.0
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_windows_cut_from_a_raster_stitch_back_into_it_exactly():
    ax, ay = AxisLayout(45, 16, 6), AxisLayout(37, 16, 6)
    raster = np.random.default_rng(1).integers(0, 256, (3, 37, 45)).astype(np.uint8)
    norm = BandNorm.full_range("uint8", 3)
    model = norm.to_model(raster)
    windows = np.stack([np.stack([model[:, ay.source_index(r)][:, :, ax.source_index(c)]
                                  for c in range(ax.count)]) for r in range(ay.count)])
    done = _stitch(Stitcher(ax, ay, "cosine", norm, "cpu"), windows)
    out = np.concatenate([rows for _, _, rows in done], axis=1)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, raster)
