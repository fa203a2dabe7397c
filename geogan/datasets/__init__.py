"""Training data: folders of chips or images, checked up front, normalised, augmented.

Layouts read (``--a``/``--b`` of ``geogan train``):

- unpaired (CycleGAN): two folders of GeoTIFF chips written by ``geogan tile``, or of
  PNG/JPEG images (the ``trainA``/``trainB`` folders of the public CycleGAN data sets);
- paired (pix2pix): ``DIR/A/*.tif`` and ``DIR/B/*.tif`` with equal file names as
  written by ``geogan tile --pair`` (give ``--a DIR``, or ``--a DIR/A --b DIR/B``), or a
  folder of several such outputs (``--a ROOT`` with ``ROOT/scene1/A``, ``ROOT/scene1/B``,
  ...), paired by name within each; several ``--a`` folders (and as many ``--b``) add up;
- side by side (pix2pix): one folder of images holding A on the left half and B on the
  right half (the pix2pix ``maps``/``facades`` data sets), given as ``--a DIR`` alone.

pix2pix's ``direction`` "BtoA" swaps the roles, as pytorch-CycleGAN-and-pix2pix's
``--direction`` does: the right halves (or the B chips) become domain A.

Every file is checked before training starts (band count and dtype equal within a
domain, large enough for the crop, readable), so bad input fails at once with a
message naming the file. PNG/JPEG pictures of another band layout than most of their
folder's (a grayscale or RGBA picture among RGB ones) are converted to it on reading;
GeoTIFF chips must agree. Per-band normalisation comes from
:meth:`geogan.normalize.BandNorm.from_samples` over the domain's chips, nodata ignored.

Augmentation suits overhead imagery, which has no "up": a random square crop,
horizontal and vertical flips and 90-degree rotations, the same for both sides of
a pair. Each sample's randomness comes from a seed that the sampler hands out with
its index (:class:`EpochSampler`), so the data seen at step N is the same whatever
the number of loader workers and after ``--resume``.
"""

from geogan.datasets.augment import AugmentParams, apply_augment, draw_augment
from geogan.datasets.chips import ChipDataset
from geogan.datasets.domains import Domain
from geogan.datasets.epochs import EpochSampler, seed_for, steps_per_epoch
from geogan.datasets.images import (
    PICTURE_SUFFIXES,
    ImageInfo,
    inspect_image,
    list_images,
    read_image,
)
from geogan.datasets.opening import (
    DEFAULT_CACHE_MB,
    DIRECTIONS,
    TrainingData,
    open_training_data,
)

__all__ = ["DEFAULT_CACHE_MB", "DIRECTIONS", "PICTURE_SUFFIXES", "AugmentParams",
           "ChipDataset", "Domain", "EpochSampler", "ImageInfo", "TrainingData",
           "apply_augment", "draw_augment", "inspect_image", "list_images",
           "open_training_data", "read_image", "seed_for", "steps_per_epoch"]
