"""Augmentation for overhead imagery, which has no "up": a random square crop, flips and
90-degree rotations, drawn from a sample's own random generator."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
