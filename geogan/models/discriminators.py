"""Discriminators: the PatchGAN of pix2pix and CycleGAN, and a 1x1 PixelGAN.

``PatchGANDiscriminator`` with ``n_layers=3`` is the 70x70 PatchGAN
``C64-C128-C256-C512`` (pix2pix appendix 6.1.2, CycleGAN appendix 7.2): it
classifies every overlapping 70x70 patch as real or fake, so its output is a map
``(B, 1, h, w)`` of logits rather than one number.

Every discriminator takes ``in_channels``, ``ndf`` and ``norm``, and names the training
settings it takes beyond those in ``settings_args`` (the PatchGAN: ``n_layers``);
:func:`geogan.models.discriminator_kwargs` passes exactly those. A new one is a class
here, an entry in :data:`DISCRIMINATOR_BUILDERS` and its name in
:data:`geogan.contract.choices.DISCRIMINATORS`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from geogan.models.generators import _conv_bias, norm_layer


def patchgan_receptive_field(n_layers: int) -> int:
    """Side in pixels of the patch one output of a PatchGAN sees (70 for 3 layers)."""
    rf = 1
    # the last two layers are stride-1 4x4 convolutions, the first n_layers are stride 2
    for stride in [1, 1] + [2] * n_layers:
        rf = (rf - 1) * stride + 4
    return rf


class PatchGANDiscriminator(nn.Module):
    """``Ck`` = 4x4 conv (stride 2) - norm - LeakyReLU(0.2), no norm on the first layer."""

    #: Training settings (geogan.models.base.GANSettings fields) it takes as arguments.
    settings_args: tuple[str, ...] = ("n_layers",)

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3,
                 norm: str = "instance") -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError("n_layers must be >= 1")
        # Smallest input side: the n_layers stride-2 convolutions leave H // 2^n_layers, and
        # each stride-1 4x4 convolution takes one off; one logit (after a norm over at
        # least 2 x 2 pixels) must remain.
        self.min_size = 3 * 2 ** n_layers
        bias = _conv_bias(norm)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2 ** n, 8)
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=2, padding=1, bias=bias),
                norm_layer(norm, ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        prev, mult = mult, min(2 ** n_layers, 8)
        layers += [
            nn.Conv2d(ndf * prev, ndf * mult, 4, stride=1, padding=1, bias=bias),
            norm_layer(norm, ndf * mult),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1),  # one logit per patch
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # (B, 1, ~H / 2^n_layers - 2, ~W / 2^n_layers - 2)


class PixelDiscriminator(nn.Module):
    """The 1x1 PixelGAN: judges each pixel's colour alone (pix2pix section 4.4)."""

    min_size = 1
    settings_args: tuple[str, ...] = ()

    def __init__(self, in_channels: int = 3, ndf: int = 64, norm: str = "instance") -> None:
        super().__init__()
        bias = _conv_bias(norm)
        self.model = nn.Sequential(
            nn.Conv2d(in_channels, ndf, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, bias=bias),
            norm_layer(norm, ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # (B, 1, H, W)


#: Discriminator architectures by name (keyed as geogan.contract.choices.DISCRIMINATORS).
DISCRIMINATOR_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "patchgan": PatchGANDiscriminator,
    "pixel": PixelDiscriminator,
}
