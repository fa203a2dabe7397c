"""Generators of CycleGAN (Zhu et al. 2017) and pix2pix (Isola et al. 2017).

Paper-to-code names:

- ``ResnetGenerator``: the image transformation network of Johnson et al. 2016
  used by CycleGAN: ``c7s1-ngf, d2ngf, d4ngf, R4ngf x n_blocks, u2ngf, ungf, c7s1-out``
  (CycleGAN appendix 7.2). 9 blocks for 256 px training, 6 for 128 px.
- ``UnetGenerator``: the pix2pix encoder-decoder with skip connections
  ``C64-C128-C256-C512-C512-C512-C512-C512`` (pix2pix appendix 6.1.1); ``num_downs``
  halvings, so the input side must be a multiple of ``2 ** num_downs``.

Every generator maps ``(B, in_channels, H, W)`` in ``[-1, 1]`` to
``(B, out_channels, H, W)`` in ``[-1, 1]`` (tanh) and provides what
:class:`geogan.models.protocol.Generator` states (``size_multiple``, ``min_size``,
instance norm by :func:`norm_layer`); ``build_generator`` checks each one it builds.

A new architecture is a class here and an entry in :data:`GENERATOR_BUILDERS`, plus its
name in :data:`geogan.contract.choices.GENERATORS` (what the CLI and QGIS list).

Upsampling (``upsample``):

- ``deconv``: the papers' fractionally strided (transposed) convolutions. Where the
  kernel size is not divisible by the stride they overlap unevenly and paint a
  2-pixel checkerboard into the output (Odena, Dumoulin and Olah, "Deconvolution
  and Checkerboard Artifacts", Distill 2016).
- ``resize``: bilinear x2 resize followed by a 3x3 convolution (the cure the same
  article proposes; CUT's generators use a blur-then-convolve variant of it).
  Every output pixel sees the same number of input pixels, so no checkerboard.

New training runs use ``resize`` (:data:`DEFAULT_UPSAMPLE`). Checkpoints written
before the choice existed have no ``upsample`` argument and rebuild as ``deconv``,
the architecture they were trained with.

Encoder features for CUT's PatchNCE loss: ``encode(x)`` returns the activations of
the layers named by ``nce_channels`` (one channel count per layer), so the patch
head that reads them can be built before the first forward.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Literal

import torch
from torch import nn

from geogan.contract import choices
from geogan.contract.options import TRAIN

NormKind = Literal["instance", "batch", "none"]
UpsampleKind = Literal["deconv", "resize"]
#: Upsampling of new training runs (chosen with benchmarks/quality.py). The constructors'
#: own default stays ``deconv``: what checkpoints without an ``upsample`` argument hold.
DEFAULT_UPSAMPLE = TRAIN.default_of("upsample")


class InstanceNorm2d(nn.InstanceNorm2d):
    """Instance normalisation computed in float32, also under bf16/fp16 autocast.

    Autocast does not list ``instance_norm`` among the ops it runs in float32, and
    the per-channel variance of a low-precision activation is what loses digits.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


def norm_layer(kind: str, channels: int) -> nn.Module:
    """The normalisation after a convolution: instance (CycleGAN), batch or none."""
    if kind == "instance":
        return InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose one of {', '.join(choices.NET_NORMS)}")


def _conv_bias(norm: str) -> bool:
    # Batch norm has its own affine shift, so the convolution before it needs no bias.
    return norm != "batch"


def _check_upsample(upsample: str) -> None:
    if upsample not in choices.UPSAMPLES:
        raise ValueError(f"unknown upsample {upsample!r}; choose one of "
                         f"{', '.join(choices.UPSAMPLES)}")


class ResizeConv2d(nn.Module):
    """x2 bilinear resize, then a 3x3 convolution: ``(B, C_in, H, W) -> (B, C_out, 2H, 2W)``.

    One module in place of a ``ConvTranspose2d``, so both choices keep the same layer
    positions in a network.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True,
                 padding_mode: str = "zeros") -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias,
                              padding_mode=padding_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.interpolate(x, scale_factor=2.0, mode="bilinear",
                                      align_corners=False)  # (B, C_in, 2H, 2W)
        return self.conv(x)


class ResnetBlock(nn.Module):
    """``Rk``: two 3x3 convolutions with the same number of filters and a skip: ``x + F(x)``."""

    def __init__(self, channels: int, norm: str = "instance", use_dropout: bool = False,
                 padding: str = "reflect") -> None:
        super().__init__()
        bias = _conv_bias(norm)
        layers: list[nn.Module] = [
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode=padding, bias=bias),
            norm_layer(norm, channels),
            nn.ReLU(True),
        ]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode=padding, bias=bias),
            norm_layer(norm, channels),
        ]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)  # (B, C, H, W)


class ResnetGenerator(nn.Module):
    """CycleGAN's generator: downsample twice, ``n_blocks`` residual blocks, upsample twice."""

    size_multiple = 4
    #: Smallest input side: the residual blocks' reflection padding and instance norm
    #: need at least 2 x 2 pixels after the two stride-2 convolutions.
    min_size = 8

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64,
                 n_blocks: int = 9, norm: str = "instance", use_dropout: bool = False,
                 padding: str = "reflect", upsample: str = "deconv") -> None:
        super().__init__()
        if n_blocks < 0:
            raise ValueError("n_blocks must be >= 0")
        _check_upsample(upsample)
        bias = _conv_bias(norm)
        # c7s1-ngf: 7x7 conv, stride 1, reflection padding 3
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, ngf, 7, padding=3, padding_mode=padding, bias=bias),
            norm_layer(norm, ngf),
            nn.ReLU(True),
        ]
        # d2ngf, d4ngf: 3x3 conv, stride 2                      (B, 4ngf, H/4, W/4)
        for i in range(2):
            mult = 2 ** i
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias),
                norm_layer(norm, ngf * mult * 2),
                nn.ReLU(True),
            ]
        # R4ngf x n_blocks
        layers += [ResnetBlock(ngf * 4, norm, use_dropout, padding) for _ in range(n_blocks)]
        # u2ngf, ungf: 3x3 fractional-strided conv, stride 1/2  (B, ngf, H, W)
        # (or a x2 resize and a 3x3 conv with upsample="resize")
        for i in range(2):
            mult = 2 ** (2 - i)
            up: nn.Module
            if upsample == "resize":
                up = ResizeConv2d(ngf * mult, ngf * mult // 2, bias=bias, padding_mode=padding)
            else:
                up = nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1,
                                        output_padding=1, bias=bias)
            layers += [up, norm_layer(norm, ngf * mult // 2), nn.ReLU(True)]
        # c7s1-out with tanh                                    (B, out, H, W)
        layers += [
            nn.Conv2d(ngf, out_channels, 7, padding=3, padding_mode=padding),
            nn.Tanh(),
        ]
        self.model = nn.Sequential(*layers)
        # PatchNCE layers (CUT section 4): the input pixels, the first and second
        # downsampling convolutions, the first and the fifth residual block
        # (the last one when there are fewer). Indices into self.model; -1 is the input.
        points = [-1, 3, 6]
        channels = [in_channels, ngf * 2, ngf * 4]
        if n_blocks:
            points += sorted({9, 9 + min(4, n_blocks - 1)})
            channels += [ngf * 4] * (len(points) - 3)
        self.nce_points = tuple(points)
        self.nce_channels = tuple(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The PatchNCE features of ``x``: one ``(B, nce_channels[i], h, w)`` per layer."""
        feats = [x] if self.nce_points[0] == -1 else []
        h = x
        for i, layer in enumerate(self.model[:self.nce_points[-1] + 1]):
            h = layer(h)
            if i in self.nce_points:
                feats.append(h)
        return feats


class UnetGenerator(nn.Module):
    """pix2pix's U-Net: ``num_downs`` 4x4 stride-2 convolutions down, mirrored back up.

    Each decoder level sees the encoder output of the same resolution concatenated
    with the level below (the skip connections); dropout (the pix2pix noise) is on
    the inner 512-filter decoder levels when ``use_dropout``.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, num_downs: int = 8,
                 ngf: int = 64, norm: str = "instance", use_dropout: bool = False,
                 upsample: str = "deconv") -> None:
        super().__init__()
        if num_downs < 5:
            raise ValueError("a U-Net needs num_downs >= 5")
        _check_upsample(upsample)

        def up(c_in: int, c_out: int, up_bias: bool) -> nn.Module:  # (B, c_in, h, w) -> 2h, 2w
            if upsample == "resize":
                return ResizeConv2d(c_in, c_out, bias=up_bias)
            return nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=up_bias)

        self.size_multiple = 2 ** num_downs
        self.min_size = self.size_multiple  # the 1 x 1 bottleneck has no norm
        bias = _conv_bias(norm)
        ch = [ngf * min(2 ** i, 8) for i in range(num_downs)]  # encoder widths C64..C512

        downs: list[nn.Module] = []
        for i in range(num_downs):
            c_in = in_channels if i == 0 else ch[i - 1]
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2, True)]
            layers.append(nn.Conv2d(c_in, ch[i], 4, stride=2, padding=1, bias=bias))
            if 0 < i < num_downs - 1:  # no norm on the first layer nor on the 1x1 bottleneck
                layers.append(norm_layer(norm, ch[i]))
            downs.append(nn.Sequential(*layers))

        ups: list[nn.Module] = []
        for i in range(num_downs):
            innermost = i == num_downs - 1
            c_in = ch[i] if innermost else 2 * ch[i]  # skip concatenation doubles the width
            layers = [nn.ReLU(True)]
            if i == 0:
                layers += [up(c_in, out_channels, True), nn.Tanh()]
            else:
                layers += [up(c_in, ch[i - 1], bias), norm_layer(norm, ch[i - 1])]
                if use_dropout and 4 <= i < num_downs - 1:
                    layers.append(nn.Dropout(0.5))
            ups.append(nn.Sequential(*layers))
        self.downs = nn.ModuleList(downs)
        self.ups = nn.ModuleList(ups)
        # PatchNCE layers: the input pixels and the first four encoder levels
        self.nce_channels = (in_channels, *ch[:4])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        h = x
        for down in self.downs:  # (B, ch[i], H / 2^(i+1), W / 2^(i+1))
            h = down(h)
            skips.append(h)
        h = self.ups[-1](skips[-1])
        for i in range(len(self.ups) - 2, -1, -1):
            h = self.ups[i](torch.cat([skips[i], h], dim=1))
        return h  # (B, out_channels, H, W)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The PatchNCE features of ``x``: one ``(B, nce_channels[i], h, w)`` per layer."""
        feats = [x]
        h = x
        for down in self.downs[:len(self.nce_channels) - 1]:
            h = down(h)
            feats.append(h)
        return feats


#: Generator architectures by name; each takes in_channels, out_channels, ngf, norm,
#: use_dropout, upsample. Keyed as geogan.contract.choices.GENERATORS (in geogan.models).
GENERATOR_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "resnet_9blocks": partial(ResnetGenerator, n_blocks=9),
    "resnet_6blocks": partial(ResnetGenerator, n_blocks=6),
    "unet_256": partial(UnetGenerator, num_downs=8),
    "unet_128": partial(UnetGenerator, num_downs=7),
}
