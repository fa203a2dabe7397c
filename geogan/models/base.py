"""The base of the translation models and what each model family declares about itself.

The training loop (:mod:`geogan.train`) owns optimisers, precision, devices and
DDP; a model only says what each step computes. Generators of one model run inside
one module (``g_net``) and discriminators inside another (``d_net``) so that
DistributedDataParallel sees exactly one forward per backward.

A family (one module: :mod:`~geogan.models.cyclegan`, :mod:`~geogan.models.pix2pix`,
:mod:`~geogan.models.cut`) is a :class:`GANModel` subclass that declares, as class
attributes, everything the rest of geogan asks of it (see :data:`DECLARED`), and is
listed in :mod:`geogan.models.registry`, which checks those declarations when it is
built. The data and training code read the declarations and never a family's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

import torch
from torch import nn

from geogan.contract.checkpoint import GeneratorMeta
from geogan.contract.layouts import Pairing
from geogan.contract.options import TRAIN
from geogan.errors import InputError
from geogan.models import build_discriminator, build_generator, discriminator_kwargs
from geogan.models.losses import GANLoss
from geogan.models.protocol import Encoder, size_multiple

Tensor = torch.Tensor

#: What every family declares (class attributes), checked by the registry:
#: ``name`` its ``--model`` name; ``pairing`` the data it trains on
#: (:class:`~geogan.contract.layouts.Pairing`); ``default_generator`` the paper's
#: architecture when ``--generator`` is not given; ``generators`` what its checkpoint
#: keeps: ``{direction: network key}`` (``"a2b"`` at least); ``generator_keys`` the
#: networks G's optimiser trains (the checkpoint's generators and helpers such as CUT's
#: patch head); ``needs_encoder`` whether it reads the generator's encoder features
#: (:class:`~geogan.models.protocol.Encoder`); ``loss_names`` its losses in CSV order and
#: ``plot_panels`` their plot.
DECLARED: tuple[str, ...] = ("name", "pairing", "default_generator", "generators",
                             "generator_keys", "needs_encoder", "loss_names", "plot_panels")

#: Methods every family implements (the base's raise ``NotImplementedError``).
IMPLEMENTED: tuple[str, ...] = ("generator_step", "discriminator_step", "preview")


@dataclass(frozen=True)
class GANSettings:
    """Architecture and loss weights of a model (the parts a checkpoint must describe).

    The defaults are ``geogan train``'s (the contract's ``TRAIN`` table); ``generator``
    ``None`` is the family's :attr:`~GANModel.default_generator` (the model fills it in)
    and ``lambda_nce`` ``None`` its PatchNCE weight (CUT 1, FastCUT 10).
    """

    generator: str | None = TRAIN.default_of("generator")
    ngf: int = TRAIN.default_of("ngf")
    discriminator: str = TRAIN.default_of("discriminator")
    ndf: int = TRAIN.default_of("ndf")
    n_layers: int = TRAIN.default_of("n_layers")
    norm: str = TRAIN.default_of("norm")
    use_dropout: bool = False  # the papers' pix2pix option; no front end offers it
    gan_mode: str = TRAIN.default_of("gan_mode")
    lambda_cycle: float = TRAIN.default_of("lambda_cycle")
    lambda_identity: float = TRAIN.default_of("lambda_identity")
    lambda_l1: float = TRAIN.default_of("lambda_l1")
    pool_size: int = TRAIN.default_of("pool_size")
    upsample: str = TRAIN.default_of("upsample")
    lambda_nce: float | None = TRAIN.default_of("lambda_nce")
    nce_patches: int = TRAIN.default_of("nce_patches")
    #: pix2pixHD: discriminator scales, feature-matching weight, VGG19 weights file.
    num_d: int = TRAIN.default_of("num_d")
    lambda_feat: float = TRAIN.default_of("lambda_feat")
    vgg_weights: str | None = TRAIN.default_of("vgg_weights")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The settings' names (each one a ``geogan train`` option but ``use_dropout``)."""
        return tuple(f.name for f in fields(cls))


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    """Freeze (``False``) or unfreeze a network; D is frozen while G steps."""
    for p in module.parameters():
        p.requires_grad_(flag)


class GANModel:
    """Base of the translation models. Subclasses declare :data:`DECLARED`, build their
    networks with :meth:`_add_generator` / :meth:`_add_discriminator` and implement
    :data:`IMPLEMENTED`."""

    name: ClassVar[str]
    pairing: ClassVar[Pairing]
    default_generator: ClassVar[str]
    generators: ClassVar[Mapping[str, str]]
    generator_keys: ClassVar[tuple[str, ...]]
    needs_encoder: ClassVar[bool]
    #: Loss names in CSV column order; generator terms first, then discriminator terms.
    loss_names: ClassVar[tuple[str, ...]]
    #: Panels of the loss plot: (title, loss names).
    plot_panels: ClassVar[tuple[tuple[str, tuple[str, ...]], ...]]

    def __init__(self, in_bands: int, out_bands: int, settings: GANSettings,
                 seed: int = 0) -> None:
        self.in_bands = in_bands
        self.out_bands = out_bands
        if settings.generator is None:  # the family's own
            settings = replace(settings, generator=self.default_generator)
        self.settings = settings
        self.seed = seed
        self.gan_loss = GANLoss(settings.gan_mode)
        self.specs: dict[str, GeneratorMeta] = {}  # the generators, by network key
        self.discriminator_specs: dict[str, dict[str, Any]] = {}
        self.networks = nn.ModuleDict()
        # batch norm mixes the samples of a batch, so only without it may G and D run
        # real and fake images (or two inputs) through in one concatenated batch
        self.batched = settings.norm != "batch"

    def _add_generator(self, key: str, c_in: int, c_out: int) -> nn.Module:
        """Build generator ``key`` (``settings.generator``) mapping ``c_in`` to ``c_out`` bands."""
        s = self.settings
        kwargs = {"in_channels": c_in, "out_channels": c_out, "ngf": s.ngf, "norm": s.norm,
                  "use_dropout": s.use_dropout, "upsample": s.upsample}
        net = build_generator(s.generator, **kwargs)
        if self.needs_encoder and not isinstance(net, Encoder):
            raise InputError(f"`generator` {s.generator} exposes no encoder features, which "
                             f"`model` {self.name} reads; choose another `generator`")
        self.specs[key] = GeneratorMeta(key, s.generator, kwargs)
        self.networks[key] = net
        return net

    def _add_discriminator(self, key: str, c_in: int) -> nn.Module:
        """Build discriminator ``key`` (``settings.discriminator``) of ``c_in`` bands."""
        s = self.settings
        kwargs = discriminator_kwargs(s.discriminator, c_in, s.ndf, s.norm, s)
        net = build_discriminator(s.discriminator, **kwargs)
        self.discriminator_specs[key] = {"arch": s.discriminator, "kwargs": kwargs}
        self.networks[key] = net
        return net

    # -- what the training loop uses -------------------------------------------------
    g_net: nn.Module
    d_net: nn.Module

    @property
    def size_multiple(self) -> int:
        return max(size_multiple(self.networks[k]) for k in self.generators.values())

    def generator_meta(self) -> dict[str, GeneratorMeta]:
        """The generators the checkpoint keeps, by direction (:attr:`generators`)."""
        return {direction: self.specs[key] for direction, key in self.generators.items()}

    def discriminator_meta(self) -> dict[str, dict[str, Any]]:
        return {k: {"arch": s["arch"], "kwargs": dict(s["kwargs"])}
                for k, s in self.discriminator_specs.items()}

    def generator_step(self, g_run: nn.Module, real_a: Tensor,
                       real_b: Tensor) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
        """G's total loss, its named parts, and the fakes the D step needs (detached)."""
        raise NotImplementedError

    def discriminator_step(self, d_run: nn.Module, real_a: Tensor, real_b: Tensor,
                           fakes: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError

    @classmethod
    def discriminator_reach(cls, settings: GANSettings) -> int:
        """How many times smaller than the crop the smallest image a discriminator sees is
        (1; pix2pixHD's multi-scale D: ``2^(num_d - 1)``): training crops must be that
        many times the discriminator's ``min_size``."""
        return 1

    def training_meta(self) -> dict[str, Any]:
        """What the family adds to the checkpoint's ``training`` metadata."""
        return {}

    def state_tensors(self) -> dict[str, Tensor]:
        """Training state beyond the weights (image pools), as tensors."""
        return {}

    def load_state_tensors(self, tensors: dict[str, Tensor], device: torch.device) -> None:
        """Restore :meth:`state_tensors`."""

    @torch.no_grad()
    def preview(self, real_a: Tensor, real_b: Tensor) -> list[list[tuple[str, str, Tensor]]]:
        """Rows of ``(label, domain "a"/"b", image (B, C, H, W))`` to show a person."""
        raise NotImplementedError
