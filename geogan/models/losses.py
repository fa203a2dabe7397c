"""Adversarial losses, always evaluated in float32 (also under bf16/fp16 autocast).

- ``lsgan``: least squares GAN (Mao et al. 2017), CycleGAN's choice:
  ``(D(x) - 1)^2`` for real, ``D(x)^2`` for fake.
- ``vanilla``: the original cross-entropy GAN on logits (pix2pix's choice).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from geogan.contract import choices


class GANLoss(nn.Module):
    """``loss(prediction, target_is_real)`` for a discriminator output map of any shape."""

    def __init__(self, mode: str = "lsgan") -> None:
        super().__init__()
        if mode not in choices.GAN_MODES:
            raise ValueError(f"unknown GAN loss {mode!r}; choose one of "
                             f"{', '.join(choices.GAN_MODES)}")
        self.mode = mode

    def forward(self, prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        pred = prediction.float()
        target = torch.ones_like(pred) if target_is_real else torch.zeros_like(pred)
        if self.mode == "lsgan":
            return F.mse_loss(pred, target)
        return F.binary_cross_entropy_with_logits(pred, target)


def l1_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference in float32 (cycle, identity and pix2pix L1 terms)."""
    return F.l1_loss(a.float(), b.float())
