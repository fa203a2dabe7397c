"""Image-quality maths on numpy arrays, no I/O: the SSIM of Wang et al. (2004), PSNR, and
two measures of fine texture, and spectral fidelity (SAM, ERGAS, normalised differences).

:func:`ssim_map` computes local SSIM under a Gaussian window (:func:`gaussian_kernel`,
applied by the separable :func:`filter2d`) over valid pixels only; :func:`psnr` turns a
normalised mean squared error into decibels. :func:`detail_energy` (how much a blur
removes) and :func:`checker_energy` (the 2-pixel pattern of transposed convolutions) are
compared with the same figure of a real image: 1.0 is as fine-grained as the photo.
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


def detail_energy(x: np.ndarray, valid: np.ndarray) -> float:
    """Mean absolute difference between neighbouring valid pixels, across and down.

    ``x`` is ``(bands, H, W)``, ``valid`` ``(H, W)`` booleans; the mean is over the bands and
    over the pairs of horizontally or vertically adjacent pixels that are both valid. A
    blurred image scores lower than a sharp one of the same scene. NaN without such a pair.
    """
    x = np.asarray(x, dtype=np.float64)
    across = np.abs(np.diff(x, axis=2))[:, valid[:, 1:] & valid[:, :-1]]
    down = np.abs(np.diff(x, axis=1))[:, valid[1:, :] & valid[:-1, :]]
    n = across.size + down.size
    return float((across.sum() + down.sum()) / n) if n else math.nan


def checker_energy(x: np.ndarray, valid: np.ndarray) -> float:
    """Mean 2x2 checker energy: ``|x[2i,2j] - x[2i+1,2j] - x[2i,2j+1] + x[2i+1,2j+1]| / 4``.

    Over the bands and the non-overlapping 2x2 blocks of ``x`` (``(bands, H, W)``) whose four
    pixels are ``valid``: the amplitude of the finest checkerboard, which transposed
    convolutions paint. NaN without such a block.
    """
    x = np.asarray(x, dtype=np.float64)
    h, w = x.shape[1] // 2 * 2, x.shape[2] // 2 * 2
    x, valid = x[:, :h, :w], valid[:h, :w]
    c = x[:, 0::2, 0::2] - x[:, 1::2, 0::2] - x[:, 0::2, 1::2] + x[:, 1::2, 1::2]
    ok = valid[0::2, 0::2] & valid[1::2, 0::2] & valid[0::2, 1::2] & valid[1::2, 1::2]
    return float(np.abs(c[:, ok]).mean() / 4) if ok.any() else math.nan


# -- spectral fidelity --------------------------------------------------------------------

#: NDVI difference above which a pixel counts as changed (``ndvi_changed``).
NDVI_CHANGE = 0.1


def spectral_angles(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The spectral angle, in degrees, between the spectra of ``x`` and ``y`` (``(C, N)``).

    ``angle = arccos(sum_b x_b y_b / (|x| |y|))`` per pixel (Kruse et al. 1993, the
    spectral angle mapper), in [0, 180]; 0 when one spectrum is a positive multiple of the
    other, whatever its brightness. Returns ``(angles (N,), defined (N,))``: the angle is
    undefined (0 there, ``defined`` False) where either spectrum is all zeros.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    norms = np.sqrt((x * x).sum(axis=0)) * np.sqrt((y * y).sum(axis=0))
    defined = norms > 0
    cos = np.divide((x * y).sum(axis=0), norms, out=np.zeros_like(norms), where=defined)
    angles = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    angles[~defined] = 0.0
    return angles, defined


def normalized_difference(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(b - a) / (b + a)`` per pixel (NDVI with ``a`` red and ``b`` NIR), and where it is
    defined (``b + a`` not 0); 0 where it is not."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    total = a + b
    defined = total != 0
    return np.divide(b - a, total, out=np.zeros_like(total), where=defined), defined


def ergas(rmse: np.ndarray, reference_mean: np.ndarray, ratio: float = 1.0) -> float | None:
    """ERGAS (Wald 2000): ``100 * ratio * sqrt(mean_b (RMSE_b / mean_ref_b)^2)``.

    ``rmse`` and ``reference_mean`` are per band; ``ratio`` is the ratio of the pixel
    sizes (1 when both rasters are compared on the same grid). Lower is better, 0 for
    identical rasters. None when a band's reference mean is 0 (the ratio is undefined).
    """
    rmse = np.asarray(rmse, dtype=np.float64)
    mean = np.asarray(reference_mean, dtype=np.float64)
    if rmse.size == 0 or np.any(mean == 0):
        return None
    return float(100.0 * ratio * math.sqrt(float(np.mean((rmse / mean) ** 2))))
