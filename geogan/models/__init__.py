"""Network registries: architecture name -> constructor.

Checkpoints store ``arch`` and ``kwargs``; :func:`build_generator` rebuilds the
same network from them, so loading needs nothing but the checkpoint. The CLI
reads its choices from these dicts.

>>> g = build_generator("resnet_6blocks", in_channels=4, out_channels=3, ngf=16)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import torch
from torch import nn

from geogan.contract import choices
from geogan.models.discriminators import DISCRIMINATOR_BUILDERS
from geogan.models.generators import DEFAULT_UPSAMPLE, GENERATOR_BUILDERS
from geogan.models.hd_networks import HD_GENERATOR_BUILDERS
from geogan.models.losses import GANLoss
from geogan.models.protocol import (
    check_generator,
    foreign_norm_layers,
    instance_norm_layers,
    size_multiple,
)

#: Generator architectures (geogan.models.generators.GENERATOR_BUILDERS), keyed by and in the
#: order of geogan.contract.choices.GENERATORS (what the CLI and QGIS list): a name there
#: without a builder fails at import.
GENERATORS: dict[str, Callable[..., nn.Module]] = {
    name: {**GENERATOR_BUILDERS, **HD_GENERATOR_BUILDERS}[name] for name in choices.GENERATORS}

#: Discriminator architectures; each takes in_channels, ndf, norm and its ``settings_args``.
DISCRIMINATORS: dict[str, Callable[..., nn.Module]] = {
    name: DISCRIMINATOR_BUILDERS[name] for name in choices.DISCRIMINATORS}


def settings_args(arch: str) -> tuple[str, ...]:
    """The training settings discriminator ``arch`` takes beyond in_channels, ndf and norm."""
    builder = DISCRIMINATORS[arch]
    cls = builder.func if isinstance(builder, partial) else builder
    declared = getattr(cls, "settings_args", None)
    if not isinstance(declared, tuple) or not all(isinstance(a, str) for a in declared):
        raise TypeError(f"discriminator {arch!r} ({getattr(cls, '__qualname__', cls)}) does "
                        "not declare settings_args, the tuple of settings it takes")
    return declared


for _arch in DISCRIMINATORS:  # each states its arguments, checked at import
    settings_args(_arch)


def discriminator_kwargs(arch: str, in_channels: int, ndf: int, norm: str,
                         settings: Any | Mapping[str, Any]) -> dict[str, Any]:
    """The arguments of discriminator ``arch``: the common three and the settings it declares,
    read from ``settings`` (a :class:`~geogan.models.base.GANSettings` or a mapping)."""
    kwargs: dict[str, Any] = {"in_channels": in_channels, "ndf": ndf, "norm": norm}
    for name in settings_args(arch):
        kwargs[name] = settings[name] if isinstance(settings, Mapping) \
            else getattr(settings, name)
    return kwargs


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


def build_generator(arch: str, *, encoder: bool = False, **kwargs: Any) -> nn.Module:
    """A freshly initialised generator, checked against
    :class:`~geogan.models.protocol.Generator` (and :class:`~geogan.models.protocol.Encoder`
    when ``encoder``); unknown ``arch`` raises ``KeyError``."""
    if arch not in GENERATORS:
        raise KeyError(f"unknown generator {arch!r}; choose one of {', '.join(GENERATORS)}")
    net = GENERATORS[arch](**kwargs)
    check_generator(net, arch, encoder=encoder)
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


def min_crop(generator: str, discriminator: str, n_layers: int = 3,
             reach: int = 1) -> tuple[int, int]:
    """``(smallest, multiple)``: the smallest training crop ``generator`` and
    ``discriminator`` take (their ``min_size``; the discriminator's times ``reach``, how
    much smaller a multi-scale model's coarsest discriminator sees the crop) and the
    generator's ``size_multiple``, which crops must be multiples of; read off the networks
    built on the ``meta`` device (nothing allocated)."""
    import torch

    given = {"n_layers": n_layers}  # the settings the crop depends on; others: defaults
    kwargs = {k: given[k] for k in settings_args(discriminator) if k in given}
    with torch.device("meta"):
        g = build_generator(generator, in_channels=1, out_channels=1, ngf=1)
        d = build_discriminator(discriminator, in_channels=1, ndf=1, **kwargs)
    multiple = size_multiple(g)
    need = max(g.min_size, int(d.min_size) * reach)
    return -(-need // multiple) * multiple, multiple


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["DEFAULT_UPSAMPLE", "DISCRIMINATORS", "GENERATORS", "GANLoss",
           "INIT_GAIN", "build_discriminator", "build_generator",
           "count_parameters", "discriminator_kwargs", "init_weights", "min_crop",
           "settings_args", "size_multiple"]


def takes_stats(arch: str, kwargs: dict[str, Any]) -> bool:
    """Whether generator ``arch`` built with ``kwargs`` (a checkpoint's) has instance-norm
    layers and no other per-input normalisation: whether ``--norm global|dense`` applies.
    Built on the meta device (nothing allocated); an unknown or unbuildable one: False."""
    if arch not in GENERATORS:
        return False
    try:
        with torch.device("meta"):
            net = GENERATORS[arch](**kwargs)
    except (TypeError, ValueError):
        return False
    return bool(instance_norm_layers(net)) and not foreign_norm_layers(net)
