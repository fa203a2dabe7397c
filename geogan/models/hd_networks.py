"""The networks of pix2pixHD (Wang et al., CVPR 2018): the coarse-to-fine generator and the
multi-scale discriminator.

Paper-to-code names:

- ``GlobalGenerator``: G1, ``c7s1-ngf, d(2ngf) ... d(2^n ngf), R x n_blocks, u ... u,
  c7s1-out`` with ``n_downsampling`` halvings (4 in the paper). The paper doubles the width
  at every halving (1024 filters in the residual blocks of its 2048 x 1024 model, some 180
  million weights); geogan caps the width at 8 x ``ngf`` as pix2pix's U-Net does, so the
  default ``ngf`` 64 gives 512 filters there and ~50 million weights, the size of
  pix2pix's ``unet_256``.
- ``LocalEnhancer``: G = {G1, G2}. G1 runs on the input downsampled x2 (3 x 3 average
  pooling) and its last feature map (before its output convolution) is added to G2's
  front end (``c7s1-ngf/2, d(ngf)``) at half resolution; G2's residual blocks and
  upsampling bring it back to full resolution. ``ngf`` is G1's width, G2's is half of it
  (the paper's 2048 x 1024 model: 64 and 32).
- ``MultiscaleDiscriminator``: D1, D2, D3: identical PatchGANs on the image and on copies
  downsampled x2 and x4; :meth:`MultiscaleDiscriminator.features` returns every
  intermediate activation, which the feature-matching loss compares.

Both generators provide :class:`geogan.models.protocol.Generator` (``size_multiple``,
``min_size``) and normalise only by :func:`~geogan.models.generators.norm_layer`, so
``translate --norm global|dense`` reaches every instance-norm layer, G1's included.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from geogan.models.generators import (
    ResizeConv2d,
    ResnetBlock,
    _check_upsample,
    _conv_bias,
    norm_layer,
)

Tensor = torch.Tensor

#: Widest layer of G1, in multiples of ``ngf`` (see the module docstring).
MAX_WIDTH = 8


def downsample_x2() -> nn.Module:
    """pix2pixHD's x2 downsampling of images between scales: 3 x 3 average, stride 2."""
    return nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)


def _up(c_in: int, c_out: int, bias: bool, upsample: str) -> nn.Module:
    if upsample == "resize":
        return ResizeConv2d(c_in, c_out, bias=bias, padding_mode="reflect")
    return nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1, bias=bias)


class GlobalGenerator(nn.Module):
    """G1: ``n_downsampling`` stride-2 convolutions, residual blocks, as many back up."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64,
                 n_downsampling: int = 4, n_blocks: int = 9, norm: str = "instance",
                 use_dropout: bool = False, upsample: str = "deconv",
                 output_layer: bool = True) -> None:
        super().__init__()
        if n_downsampling < 1 or n_blocks < 0:
            raise ValueError("n_downsampling must be >= 1 and n_blocks >= 0")
        _check_upsample(upsample)
        bias = _conv_bias(norm)
        self.size_multiple = 2 ** n_downsampling
        # the residual blocks' reflection padding and instance norm need 2 x 2 pixels
        self.min_size = 2 * self.size_multiple
        widths = [ngf * min(2 ** i, MAX_WIDTH) for i in range(n_downsampling + 1)]
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, ngf, 7, padding=3, padding_mode="reflect", bias=bias),
            norm_layer(norm, ngf), nn.ReLU(True)]
        for i in range(n_downsampling):  # (B, widths[i+1], H / 2^(i+1), W / 2^(i+1))
            layers += [nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1, bias=bias),
                       norm_layer(norm, widths[i + 1]), nn.ReLU(True)]
        layers += [ResnetBlock(widths[-1], norm, use_dropout) for _ in range(n_blocks)]
        for i in range(n_downsampling, 0, -1):  # back to (B, ngf, H, W)
            layers += [_up(widths[i], widths[i - 1], bias, upsample),
                       norm_layer(norm, widths[i - 1]), nn.ReLU(True)]
        self.features = nn.Sequential(*layers)
        self.feature_channels = ngf
        self.output = nn.Sequential(
            nn.Conv2d(ngf, out_channels, 7, padding=3, padding_mode="reflect"),
            nn.Tanh()) if output_layer else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.features(x)  # (B, ngf, H, W)
        return h if self.output is None else self.output(h)  # (B, out_channels, H, W)


class LocalEnhancer(nn.Module):
    """G = {G1, G2}: G1 at half resolution, its features added into G2 (one enhancer)."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64,
                 n_downsample_global: int = 4, n_blocks_global: int = 9,
                 n_blocks_local: int = 3, norm: str = "instance", use_dropout: bool = False,
                 upsample: str = "deconv") -> None:
        super().__init__()
        _check_upsample(upsample)
        bias = _conv_bias(norm)
        self.global_net = GlobalGenerator(in_channels, out_channels, ngf, n_downsample_global,
                                          n_blocks_global, norm, use_dropout, upsample,
                                          output_layer=False)
        self.downsample = downsample_x2()
        self.size_multiple = 2 * self.global_net.size_multiple
        self.min_size = 2 * self.global_net.min_size
        local = max(ngf // 2, 1)
        # G2's front end: c7s1-ngf/2, d(ngf): (B, ngf, H/2, W/2), G1's feature shape
        self.local_down = nn.Sequential(
            nn.Conv2d(in_channels, local, 7, padding=3, padding_mode="reflect", bias=bias),
            norm_layer(norm, local), nn.ReLU(True),
            nn.Conv2d(local, ngf, 3, stride=2, padding=1, bias=bias),
            norm_layer(norm, ngf), nn.ReLU(True))
        self.local_up = nn.Sequential(
            *[ResnetBlock(ngf, norm, use_dropout) for _ in range(n_blocks_local)],
            _up(ngf, local, bias, upsample), norm_layer(norm, local), nn.ReLU(True),
            nn.Conv2d(local, out_channels, 7, padding=3, padding_mode="reflect"),
            nn.Tanh())

    def forward(self, x: Tensor) -> Tensor:
        coarse = self.global_net(self.downsample(x))  # G1's features (B, ngf, H/2, W/2)
        return self.local_up(self.local_down(x) + coarse)  # (B, out_channels, H, W)


def _feature_points(d: nn.Module) -> tuple[nn.Sequential, list[int]]:
    """A discriminator's layers and the indices whose outputs feature matching compares:
    every activation (LeakyReLU) and the last layer (the prediction)."""
    layers = getattr(d, "model", None)
    if not isinstance(layers, nn.Sequential):
        raise TypeError(f"{type(d).__name__} keeps no nn.Sequential `model` whose "
                        "activations feature matching could read")
    points = [i for i, m in enumerate(layers) if isinstance(m, nn.LeakyReLU)]
    return layers, [*points, len(layers) - 1]


def discriminator_features(d: nn.Module, x: Tensor) -> list[Tensor]:
    """The activations of discriminator ``d`` on ``x``; the last is its prediction map."""
    layers, points = _feature_points(d)
    out: list[Tensor] = []
    h = x
    for i, layer in enumerate(layers):
        h = layer(h)
        if i in points:
            out.append(h)
    return out


class MultiscaleDiscriminator(nn.Module):
    """The conditional D_k(x, y) of pix2pixHD: scale k sees both images downsampled k times."""

    def __init__(self, scales: list[nn.Module], batched: bool) -> None:
        super().__init__()
        self.scales = nn.ModuleList(scales)
        self.batched = batched
        self.downsample = downsample_x2()

    def features(self, x: Tensor) -> list[list[Tensor]]:
        """Per scale (finest first), every activation of its D on ``x``; the last is the
        prediction map."""
        out = []
        for k, d in enumerate(self.scales):
            if k:
                x = self.downsample(x)
            out.append(discriminator_features(d, x))
        return out

    def predictions(self, x: Tensor) -> list[Tensor]:
        """Per scale, D's prediction map of ``x``."""
        out = []
        for k, d in enumerate(self.scales):
            if k:
                x = self.downsample(x)
            out.append(d(x))
        return out

    def forward(self, real_a: Tensor, real_b: Tensor,
                fake_b: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        real = torch.cat([real_a, real_b], dim=1)  # (B, Ca + Cb, H, W)
        fake = torch.cat([real_a, fake_b], dim=1)
        if self.batched:
            n = real.shape[0]
            preds = self.predictions(torch.cat([real, fake]))
            return [p[:n] for p in preds], [p[n:] for p in preds]
        return self.predictions(real), self.predictions(fake)


def feature_matching_loss(fake: list[list[Tensor]], real: list[list[Tensor]]) -> Tensor:
    """pix2pixHD's L_FM (eq. 4): for each of the ``num_D`` scales and each of its ``n``
    intermediate activations (the prediction left out), the mean absolute difference,
    weighted ``4 / n`` (the code's ``4 / (n_layers + 1)``) and ``1 / num_D``; the real
    features are constants."""
    total = torch.zeros((), device=fake[0][0].device)
    for f_scale, r_scale in zip(fake, real, strict=True):
        n = len(f_scale) - 1
        for f, r in zip(f_scale[:-1], r_scale[:-1], strict=True):
            total = total + (4.0 / n) / len(fake) * \
                nn.functional.l1_loss(f.float(), r.detach().float())
    return total


#: pix2pixHD's generator architectures by name (see geogan.models.GENERATORS).
HD_GENERATOR_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "pix2pixhd": LocalEnhancer,
    "pix2pixhd_global": GlobalGenerator,
}
