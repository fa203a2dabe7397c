"""The one vocabulary of training-data layouts: what a model asks for and what was found.

A model family declares its :class:`Pairing` (:attr:`geogan.models.base.GANModel.pairing`):
whether its samples must show the same ground in both domains. The data code reads
that, never a model's name, and answers with the :class:`Layout` it found, which a
checkpoint records as ``training.layout`` (the values are those geogan has always
written, so older checkpoints read the same).
"""

from __future__ import annotations

from enum import StrEnum


class Pairing(StrEnum):
    """What a model needs of its samples."""

    #: Two independent samples, one of each domain (CycleGAN, CUT).
    UNPAIRED = "unpaired"
    #: A and B over the same ground (pix2pix).
    PAIRED = "paired"


class Layout(StrEnum):
    """How the training data was found; the value is the checkpoint's ``training.layout``."""

    #: One chip folder per domain.
    UNPAIRED = "unpaired"
    #: ``A/`` and ``B/`` chips matched by file name (``geogan tile --pair``).
    PAIRED = "paired"
    #: One folder of images, A on the left half and B on the right.
    SIDE_BY_SIDE = "side_by_side"
    #: Random windows of each domain's rasters, drawn independently.
    RASTER_WINDOWS = "raster_windows"
    #: Random windows of A's rasters with B read over the same ground.
    PAIRED_RASTER_WINDOWS = "paired_raster_windows"

    @property
    def pairing(self) -> Pairing:
        return Pairing.UNPAIRED if self in _UNPAIRED else Pairing.PAIRED

    @classmethod
    def raster_windows(cls, pairing: Pairing) -> Layout:
        """The raster layout of ``pairing``."""
        return cls.PAIRED_RASTER_WINDOWS if pairing is Pairing.PAIRED else cls.RASTER_WINDOWS


_UNPAIRED = frozenset({Layout.UNPAIRED, Layout.RASTER_WINDOWS})
