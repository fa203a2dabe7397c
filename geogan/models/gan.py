"""The translation models in one namespace (each family lives in its own module).

:mod:`~geogan.models.base` holds :class:`GANSettings` and :class:`GANModel` (what a
family declares), :mod:`~geogan.models.cyclegan`, :mod:`~geogan.models.pix2pix` and
:mod:`~geogan.models.cut` the families, :mod:`~geogan.models.registry` the checked
registry :data:`GAN_MODELS`.
"""

from __future__ import annotations

from geogan.models.base import GANModel, GANSettings, set_requires_grad
from geogan.models.cut import CUT, CUTGenerator, FastCUT
from geogan.models.cyclegan import CycleGAN, CycleGANGenerators, DiscriminatorPair
from geogan.models.pix2pix import ConditionalDiscriminator, Pix2Pix
from geogan.models.registry import FAMILIES, family

#: Translation models by name (the CLI's --model choices): the registry itself.
GAN_MODELS = FAMILIES

__all__ = ["CUT", "GAN_MODELS", "ConditionalDiscriminator", "CUTGenerator", "CycleGAN",
           "CycleGANGenerators", "DiscriminatorPair", "FastCUT", "GANModel", "GANSettings",
           "Pix2Pix", "family", "set_requires_grad"]
