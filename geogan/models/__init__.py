"""Network registries: architecture name -> constructor.

Checkpoints store ``arch`` and ``kwargs``; :func:`build_generator` rebuilds the
same network from them, so loading needs nothing but the checkpoint. The CLI
reads its choices from these dicts.

>>> g = build_generator("resnet_6blocks", in_channels=4, out_channels=3, ngf=16)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from torch import nn

from geogan.contract import choices
from geogan.models.discriminators import PatchGANDiscriminator, PixelDiscriminator
from geogan.models.generators import (
    DEFAULT_UPSAMPLE,
    NORMS,
    UPSAMPLES,
    ResnetGenerator,
    UnetGenerator,
)
from geogan.models.losses import GAN_MODES, GANLoss

#: Generator architectures; each takes in_channels, out_channels, ngf, norm, use_dropout,
#: upsample.
#: Keyed by geogan.contract.choices.GENERATORS (what the CLI and QGIS list), in its order: a
#: name there without a builder here fails at import.
_GENERATOR_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "resnet_9blocks": partial(ResnetGenerator, n_blocks=9),
    "resnet_6blocks": partial(ResnetGenerator, n_blocks=6),
    "unet_256": partial(UnetGenerator, num_downs=8),
    "unet_128": partial(UnetGenerator, num_downs=7),
}
GENERATORS: dict[str, Callable[..., nn.Module]] = {
    name: _GENERATOR_BUILDERS[name] for name in choices.GENERATORS}

#: Discriminator architectures; each takes in_channels, ndf, norm (and n_layers for PatchGAN).
_DISCRIMINATOR_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "patchgan": PatchGANDiscriminator,
    "pixel": PixelDiscriminator,
}
DISCRIMINATORS: dict[str, Callable[..., nn.Module]] = {
    name: _DISCRIMINATOR_BUILDERS[name] for name in choices.DISCRIMINATORS}

#: Initialisation gain of the papers' code: weights ~ N(0, 0.02).
INIT_GAIN = 0.02


def init_weights(module: nn.Module, gain: float = INIT_GAIN) -> None:
    """Convolutions ~ N(0, gain), biases 0; batch-norm scales ~ N(1, gain) (the papers' init)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)


def build_generator(arch: str, **kwargs: Any) -> nn.Module:
    """A freshly initialised generator; unknown ``arch`` raises ``KeyError``."""
    if arch not in GENERATORS:
        raise KeyError(f"unknown generator {arch!r}; choose one of {', '.join(GENERATORS)}")
    net = GENERATORS[arch](**kwargs)
    init_weights(net)
    return net


def build_discriminator(arch: str, **kwargs: Any) -> nn.Module:
    """A freshly initialised discriminator; unknown ``arch`` raises ``KeyError``."""
    if arch not in DISCRIMINATORS:
        raise KeyError(f"unknown discriminator {arch!r}; choose one of "
                       f"{', '.join(DISCRIMINATORS)}")
    net = DISCRIMINATORS[arch](**kwargs)
    init_weights(net)
    return net


def size_multiple(module: nn.Module) -> int:
    """Input height and width must be multiples of this (4 for ResNet, 256 for U-Net 256)."""
    return int(getattr(module, "size_multiple", 1))


def min_crop(generator: str, discriminator: str, n_layers: int) -> tuple[int, int]:
    """``(smallest, multiple)``: the smallest training crop ``generator`` and
    ``discriminator`` take (their ``min_size``) and the generator's ``size_multiple``, which
    crops must be multiples of; read off the networks built on the ``meta`` device
    (nothing allocated)."""
    import torch

    kwargs = {"n_layers": n_layers} if discriminator == "patchgan" else {}
    with torch.device("meta"):
        g = build_generator(generator, in_channels=1, out_channels=1, ngf=1)
        d = build_discriminator(discriminator, in_channels=1, ndf=1, **kwargs)
    multiple = size_multiple(g)
    need = max(int(getattr(g, "min_size", 1)), int(getattr(d, "min_size", 1)))
    return -(-need // multiple) * multiple, multiple


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["DEFAULT_UPSAMPLE", "DISCRIMINATORS", "GAN_MODES", "GENERATORS", "GANLoss",
           "INIT_GAIN", "NORMS", "UPSAMPLES", "build_discriminator", "build_generator",
           "count_parameters", "init_weights", "min_crop", "size_multiple"]
