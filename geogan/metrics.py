"""Image-quality maths on numpy arrays, no I/O: the SSIM of Wang et al. (2004) and PSNR.

:func:`ssim_map` computes local SSIM under a Gaussian window (:func:`gaussian_kernel`,
applied by the separable :func:`filter2d`) over valid pixels only; :func:`psnr` turns a
normalised mean squared error into decibels.
"""

from __future__ import annotations

import math

import numpy as np

#: SSIM constants and Gaussian window of Wang et al. (2004).
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # an 11x11 window


def psnr(normalised_mse: float) -> float:
    """PSNR in dB of ``MSE / L^2``; infinite when it is 0 (identical bands)."""
    return math.inf if normalised_mse <= 0 else float(-10.0 * math.log10(normalised_mse))


def gaussian_kernel(sigma: float = SSIM_SIGMA, radius: int = SSIM_RADIUS) -> np.ndarray:
    """A 1-D Gaussian of ``2 * radius + 1`` taps summing to 1 (SSIM window: its outer product)."""
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def filter2d(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable correlation of ``(h, w)`` with ``kernel`` on both axes; zero outside."""
    r = len(kernel) // 2
    h, w = image.shape
    padded = np.pad(image, r)
    rows = np.zeros((h, w + 2 * r), dtype=np.float64)
    for k, c in enumerate(kernel):
        rows += c * padded[k:k + h, :]
    out = np.zeros((h, w), dtype=np.float64)
    for k, c in enumerate(kernel):
        out += c * rows[:, k:k + w]
    return out


def ssim_map(x: np.ndarray, y: np.ndarray, mask: np.ndarray, weight: np.ndarray,
             data_range: float, kernel: np.ndarray) -> np.ndarray:
    """Local SSIM ``(h, w)`` of two bands, using only pixels where ``mask`` is 1.

    ``weight`` is ``filter2d(mask, kernel)``. Moments are Gaussian-weighted over
    the valid neighbours (renormalised); the map is meaningful where ``mask`` is 1.
    """
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    safe = np.where(weight > 0, weight, 1.0)
    mx, my = x * mask, y * mask
    mu_x = filter2d(mx, kernel) / safe
    mu_y = filter2d(my, kernel) / safe
    var_x = np.maximum(filter2d(mx * x, kernel) / safe - mu_x * mu_x, 0.0)
    var_y = np.maximum(filter2d(my * y, kernel) / safe - mu_y * mu_y, 0.0)
    cov = filter2d(mx * y, kernel) / safe - mu_x * mu_y
    num = (2.0 * mu_x * mu_y + c1) * (2.0 * cov + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return num / den
