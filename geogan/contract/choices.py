"""The names of every registry and choice list, so the CLI and QGIS list them without torch.

The library's registries (dicts of builders) are keyed by these tuples: a name
added here without a builder fails at import, and a builder cannot be reached
without its name here. Defaults live with the options
(:mod:`.options`), not in the order of these tuples.
"""

from __future__ import annotations

#: Translation directions of a checkpoint's generators.
DIRECTIONS: tuple[str, ...] = ("a2b", "b2a")


def sides_of(direction: str) -> tuple[str, str]:
    """The (source, target) domain keys of a translation direction: ``"b2a"`` -> ``("b", "a")``."""
    return ("a", "b") if direction == "a2b" else ("b", "a")


#: Device names a user types; "cuda:N" is also accepted where a device is asked for.
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
#: GAN models (geogan.models.gan.GAN_MODELS).
MODELS: tuple[str, ...] = ("cyclegan", "pix2pix", "cut", "fastcut", "pix2pixhd")
#: Generator architectures (geogan.models.GENERATORS).
GENERATORS: tuple[str, ...] = ("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128",
                                  "pix2pixhd", "pix2pixhd_global")
#: Discriminator architectures (geogan.models.DISCRIMINATORS).
DISCRIMINATORS: tuple[str, ...] = ("patchgan", "pixel")
#: Generator upsampling (geogan.models.UPSAMPLES); resize is the default of new runs.
UPSAMPLES: tuple[str, ...] = ("deconv", "resize")
#: Normalisation layers of the networks.
NET_NORMS: tuple[str, ...] = ("instance", "batch", "none")
#: Adversarial losses.
GAN_MODES: tuple[str, ...] = ("lsgan", "vanilla")
#: Instance-norm statistics at translation (geogan.normstats); global is the default.
NORM_MODES: tuple[str, ...] = ("window", "global", "dense")
#: Weight profiles of overlapping translate windows (geogan.blend.blend_weights).
WINDOW_BLENDS: tuple[str, ...] = ("cosine", "linear", "none")
#: How mosaic combines overlapping chips (geogan.mosaic.BLENDS).
CHIP_BLENDS: tuple[str, ...] = ("mean", "feather")
#: Numeric precision of translation.
TRANSLATE_PRECISIONS: tuple[str, ...] = ("auto", "bf16", "fp32")
#: Numeric precision of training.
TRAIN_PRECISIONS: tuple[str, ...] = ("auto", "bf16", "fp16", "fp32")
#: ``--compress`` codecs for the GeoTIFFs geogan writes (GDAL's names, lower case). JPEG and
#: WEBP are lossy and take 8-bit data; the LERC codecs take ``--co MAX_Z_ERROR=...``.
COMPRESSIONS: tuple[str, ...] = ("zstd", "deflate", "lzw", "lzma", "packbits", "jpeg", "webp",
                                 "lerc", "lerc_deflate", "lerc_zstd")
#: Chip compression: the codecs above or none (the default: fastest to read in training).
CHIP_COMPRESSIONS: tuple[str, ...] = ("none", *COMPRESSIONS)
#: Codecs that take a PREDICTOR.
PREDICTOR_CODECS = frozenset({"zstd", "deflate", "lzw", "lzma"})
#: Resampling of warped views (tile, train from rasters) and of tile's --pair raster.
RESAMPLINGS: tuple[str, ...] = ("nearest", "bilinear", "cubic", "cubic_spline", "lanczos",
                                "average", "mode")
#: Resampling of evaluate's reference when its grid differs from the prediction's.
EVALUATE_RESAMPLINGS: tuple[str, ...] = ("nearest", "bilinear", "cubic", "average")
#: Classical baselines evaluate can score beside a prediction.
BASELINES: tuple[str, ...] = ("histogram-match",)
#: Raster data types geogan reads and writes (what the models and normalisation take).
RASTER_DTYPES: tuple[str, ...] = ("uint8", "int8", "uint16", "int16", "uint32", "int32",
                                  "float32", "float64")
#: Progress formats of ``geogan --progress``.
PROGRESS_FORMATS: tuple[str, ...] = ("bar", "json", "none")
