"""The texture measures of geogan.metrics on patterns whose answer is known."""

from __future__ import annotations

import math

import numpy as np

from geogan.metrics import checker_energy, detail_energy


def _board(h: int = 8, w: int = 8, a: float = 3.0) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return (a * (-1.0) ** (yy + xx))[None]


def test_detail_energy_of_stripes_and_of_a_blur() -> None:
    stripes = np.zeros((2, 6, 8))
    stripes[:, :, 1::2] = 10.0  # every horizontal pair differs by 10, no vertical pair does
    valid = np.ones((6, 8), bool)
    across, down = 6 * 7, 5 * 8
    assert detail_energy(stripes, valid) == np.float64(10.0 * across / (across + down))
    blurred = (stripes + np.roll(stripes, 1, axis=2)) / 2  # a box blur across
    blurred[:, :, 0] = blurred[:, :, 1]
    assert detail_energy(blurred, valid) < detail_energy(stripes, valid) / 2


def test_detail_energy_counts_only_pairs_of_valid_pixels() -> None:
    x = np.zeros((1, 3, 3))
    x[0, 1, 1] = 90.0  # a spike in the middle: its four neighbours differ by 90
    valid = np.ones((3, 3), bool)
    assert detail_energy(x, valid) == 90.0 * 4 / 12
    valid[1, 1] = False  # without the spike's pixel only flat pairs remain
    assert detail_energy(x, valid) == 0.0
    assert math.isnan(detail_energy(x, np.zeros((3, 3), bool)))


def test_checker_energy_sees_the_checkerboard_and_not_stripes() -> None:
    valid = np.ones((8, 8), bool)
    assert checker_energy(_board(a=3.0), valid) == 3.0
    stripes = np.zeros((1, 8, 8))
    stripes[:, :, 1::2] = 10.0
    assert checker_energy(stripes, valid) == 0.0
    valid[0, 0] = False  # the block holding it is left out; the others are the same
    assert checker_energy(_board(a=3.0), valid) == 3.0
    assert math.isnan(checker_energy(_board(), np.zeros((8, 8), bool)))
