"""Raster values to the generator's ``[-1, 1]`` and back in torch, as BandNorm does in numpy."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from geogan.normalize import BandNorm, unit_scale

if TYPE_CHECKING:
    import torch

#: Raster dtype -> the torch dtype that holds it (torch lacks uint16 and uint32 tensors).
TORCH_DTYPES = {"uint8": "uint8", "int8": "int8", "int16": "int16", "int32": "int32",
                "float32": "float32", "float64": "float64", "uint16": "int32",
                "uint32": "int64"}


def norm_tensors(norm: BandNorm, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``lo`` and ``hi - lo`` shaped ``(1, C, 1, 1)`` on ``device`` (float32)."""
    import torch

    lo, span = norm.scale()
    return (torch.from_numpy(lo).view(1, -1, 1, 1).to(device),
            torch.from_numpy(span).view(1, -1, 1, 1).to(device))


def to_model(x: torch.Tensor, lo: torch.Tensor, span: torch.Tensor) -> torch.Tensor:
    """Float32 raster values ``(B, C, T, T)`` -> ``[-1, 1]`` (NaN as 0), as BandNorm.to_model."""
    import torch

    x = unit_scale(x, lo, span).clamp_(-1.0, 1.0)
    return torch.nan_to_num_(x, nan=0.0)


def from_model(y: torch.Tensor, lo: torch.Tensor, span: torch.Tensor,
               dtype: np.dtype) -> np.ndarray:
    """Blended ``[-1, 1]`` values ``(C, rows, W)`` -> raster values, as BandNorm.from_model.

    Works in place on ``y``.
    """
    import torch

    x = y.clamp_(-1.0, 1.0).add_(1.0).mul_(0.5).mul_(span[0]).add_(lo[0])
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        x = x.round_().clamp_(float(info.min), float(info.max))
        x = x.to(getattr(torch, TORCH_DTYPES.get(str(dtype), "int64")))
    elif dtype == np.float64:
        x = x.to(torch.float64)
    out = x.cpu().numpy()
    return out if out.dtype == dtype else out.astype(dtype)
