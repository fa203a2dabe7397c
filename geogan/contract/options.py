"""Each command's options, stated once: name, type, default, choices, help, CLI flag, QGIS label.

The CLI builds its click options from these (:func:`geogan.cli._options.spec_option`), the
QGIS plugin its Processing parameters (``geogan_qgis.params``), the library its config
defaults (``TranslateConfig.tile`` is ``TRANSLATE["tile"].default``). ``name`` is the
library's word (the config field), ``flag`` the CLI's, ``label`` the QGIS dialog's. A new
option: one entry here and one config field defaulting to ``default_of``; a QGIS dialog
shows it once its algorithm lists it (see docs/development.md)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from . import choices
from .limits import range_text
from .stacking import STACK_HELP

#: What an option holds (``bounds``: four coordinates, xmin ymin xmax ymax).
KINDS = ("int", "float", "str", "choice", "flag", "path", "bands", "bounds")


@dataclass(frozen=True)
class Option:
    """One option of one command, in the three vocabularies that use it."""

    name: str                          # the library's word (config field), e.g. "max_nodata"
    kind: str                          # one of KINDS
    default: Any = None
    help: str = ""
    label: str = ""                    # the QGIS dialog's words; "" = not in the dialog
    flag: str = ""                     # the CLI flag; "" = "--" + name with dashes
    short: str = ""                    # a one-letter CLI alias, e.g. "-j"
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    metavar: str = ""
    optional: bool = False             # in QGIS: may be left empty (None); QGIS itself marks
                                       # the label "[optional]", so the label does not say so
    none_choice: str = ""              # in QGIS: the entry of a choice that means None
    negatable: bool = False            # a flag with a --no- form (``--compile/--no-compile``)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"option {self.name}: unknown kind {self.kind!r}")
        if self.kind == "choice" and self.default is not None \
                and self.default not in self.choices:
            raise ValueError(f"option {self.name}: default {self.default!r} not in choices")
        if self.optional and "optional" in self.label.lower():
            raise ValueError(f"option {self.name}: label {self.label!r} says it is optional; "
                             "QGIS adds [optional] to an optional parameter's label itself")

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def qgis_key(self) -> str:
        """The Processing parameter name (``TILE`` for ``tile``)."""
        return self.name.upper()

    def but(self, **changes: Any) -> Option:
        """This option with some fields changed (the same option in another command)."""
        return replace(self, **changes)


class Command(Mapping[str, Option]):
    """The options of one command, by name, in the order the help lists them."""

    def __init__(self, name: str, *options: Option) -> None:
        self.name = name
        self._options = {o.name: o for o in options}
        if len(self._options) != len(options):
            raise ValueError(f"command {name}: an option is listed twice")

    def __getitem__(self, key: str) -> Option:
        return self._options[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._options)

    def __len__(self) -> int:
        return len(self._options)

    def default_of(self, name: str) -> Any:
        """The default of option ``name`` (for the library's config dataclasses)."""
        return self._options[name].default


def parse_bands(text: str | None) -> tuple[int, ...] | None:
    """A ``bands`` option's text: ``"1,2,3"`` -> ``(1, 2, 3)``; ``None`` or blank -> ``None``
    (all bands). ValueError when a part is not a whole number (each front end says so in
    its words)."""
    if text is None or not str(text).strip():
        return None
    return tuple(int(part) for part in str(text).split(",") if part.strip())


# -- options several commands share --------------------------------------------------------

OVERWRITE = Option("overwrite", "flag", False, "Replace outputs that already exist.")
DEVICE = Option("device", "str", "auto", "auto, cpu, cuda or cuda:N.", label="Device",
                choices=choices.DEVICES)
BANDS = Option("bands", "bands", None, "Bands to use, numbered from 1 (default: all).",
               label="Bands, e.g. 1,2,3 (empty: all)", metavar="1,2,3", optional=True)
FILES_FROM = Option("files_from", "path", None,
                    "A text file listing more inputs, one path per line.", metavar="LIST")
COMPRESS = Option("compress", "choice", "zstd", "GeoTIFF compression.",
                  choices=choices.COMPRESSIONS)
COG = Option("cog", "flag", False, "Write Cloud Optimized GeoTIFFs with overviews.")
ALLOW_NO_CRS = Option("allow_no_crs", "flag", False, "Accept rasters without a CRS.")
DIRECTION = Option("direction", "choice", "a2b", "Which generator of the checkpoint to use.",
                   label="Direction", choices=choices.DIRECTIONS)
AOI = Option("aoi", "path", None, "Keep only what intersects these polygons (any CRS).",
             label="Area of interest", metavar="VECTOR_FILE", optional=True)
MAX_NODATA = Option("max_nodata", "float", 0.0,
                    "Skip chips with a larger fraction of nodata pixels.",
                    label="Maximum nodata fraction", minimum=0.0, maximum=1.0)
MIN_STD = Option("min_std", "float", 0.0,
                 "Skip near-constant chips: every band's std under this value.",
                 label="Minimum standard deviation", minimum=0.0)
CRS = Option("crs", "str", None, "Warp the inputs to this CRS.", metavar="EPSG:XXXX")
RES = Option("res", "float", None, "Warp the inputs to this pixel size.", metavar="R")
ALIGN_TO = Option("align_to", "path", None,
                  "Warp the inputs onto the CRS and pixel grid of this raster.",
                  metavar="REF.tif")
MAX_UPSAMPLE = Option("max_upsample", "float", 4.0,
                      "Refuse a warp (--crs/--res, --align-to) onto a grid of more than this "
                      "many times the raster's pixels over the same ground; raise it to "
                      "upsample a coarser raster on purpose.", metavar="FACTOR", minimum=1.0)
RESAMPLING = Option("resampling", "choice", "bilinear", "Resampling for warped views and --pair.",
                    choices=choices.RESAMPLINGS)
SHARD = Option("shard", "str", None,
               "Do task I of N of the batch (numbered from 0), as one task of a job array. "
               "Default: from $SLURM_ARRAY_TASK_ID, $JOB_COMPLETION_INDEX or "
               "$AWS_BATCH_JOB_ARRAY_INDEX with $GEOGAN_TASK_COUNT, or torchrun's $RANK.",
               metavar="I/N")

# -- translate -----------------------------------------------------------------------------

TRANSLATE = Command(
    "translate",
    FILES_FROM,
    Option("stack", "path", help=STACK_HELP % "each INPUT", metavar="RASTER",
           label="Rasters stacked with the input (in training's order)"),
    DIRECTION,
    Option("tile", "int", 512,
           "Window size in pixels (a multiple of the generator's, e.g. 4 for ResNet).",
           label="Tile size (pixels)"),
    Option("overlap", "int", 64,
           "Pixels shared by neighbouring windows and blended (at most tile/2).",
           label="Tile overlap (pixels)"),
    Option("blend", "choice", "cosine",
           "How overlapping windows are merged: cosine or linear cross-fade, or none "
           "(hard crop).", label="Blending of overlapping windows",
           choices=choices.WINDOW_BLENDS),
    Option("norm", "choice", "global",
           "Instance-norm statistics: global (the whole raster's, so the result does not "
           "depend on the tiling), dense (a smooth grid over the raster) or window (each "
           "window its own).", label="Normalisation statistics", choices=choices.NORM_MODES),
    Option("stats", "path", None,
           "Use these statistics (from --save-stats) for every input instead of estimating "
           "them.", label="Statistics file", metavar="FILE", optional=True),
    Option("save_stats", "flag", False,
           "Write each output's statistics beside it as <output>.stats.json."),
    Option("shared_stats", "flag", False,
           "Estimate one set of global statistics over all inputs together (one look for a "
           "whole batch)."),
    Option("stats_only", "flag", False,
           "Translate nothing: estimate one set of global statistics over all inputs (as "
           "--shared-stats) and write it to OUTPUT, a .json file, for --stats OUTPUT in every "
           "task of a job array."),
    Option("batch_size", "int", None,
           "Windows per generator call. Default: 8 on CUDA, 1 on the CPU.",
           label="Batch size (0: automatic for the device)"),
    DEVICE,
    Option("precision", "choice", "auto",
           "auto is bf16 on CUDA and on CPUs with native bf16 (AVX512-BF16, AMX), fp32 on "
           "other CPUs.",
           label="Numeric precision (auto: bf16 on CUDA and CPUs with native bf16)",
           choices=choices.TRANSLATE_PRECISIONS),
    COG.but(label="Write a Cloud Optimized GeoTIFF (with overviews)"),
    COMPRESS.but(label="GeoTIFF compression"),
    BANDS.but(help="Input bands to feed the generator (1-based). Default: all.",
              label="Input bands, e.g. 1,2,3 (empty: all but an alpha band)"),
    Option("bounds", "bounds", None,
           "Translate only this part of the input, in its CRS (like gdal_translate "
           "-projwin, in xmin ymin xmax ymax order): the output is the block of whole input "
           "pixels these bounds touch, on the input's grid; the normalisation statistics "
           "are the part's.", metavar="XMIN YMIN XMAX YMAX"),
    AOI.but(help="Translate only the block of the input these polygons cover (any CRS), on "
                 "the input's grid; pixels outside the polygons are written as nodata (or "
                 "masked). With --bounds, the part inside both.",
            label="Area of interest: translate only the part these polygons cover"),
    Option("nodata", "float", None,
           "Output nodata value (like gdal_translate -a_nodata): input nodata, masked and "
           "out-of-AOI pixels get VALUE, and translated pixels that would equal it are "
           "nudged to the nearest other value. Default: the target domain's nodata, else "
           "the input's (none for an input without nodata).", metavar="VALUE"),
    Option("band_names", "str", None,
           "Output band names, comma-separated, e.g. red,green,blue,nir: written as band "
           "descriptions; colour names (red, green, blue, gray, nir, ...) also set the "
           "colour interpretation. Default: the names the checkpoint records for its target "
           "domain, else the input's band meaning.", metavar="NAMES",
           label="Output band names, e.g. red,green,blue (empty: from the checkpoint)"),
    Option("at_model_resolution", "flag", False,
           "Translate at the ground resolution the model learned (the input read through a "
           "warped view at that pixel size), then resample the result back onto the "
           "input's grid.", label="Translate at the model's ground resolution"),
    Option("confidence", "flag", False,
           "Also write a confidence raster beside each output, <output>.confidence.tif (0 = "
           "the model is guessing, 1 = it is sure; the cycle error of a CycleGAN, else a "
           "feature or test-time measure), with a QGIS style (.confidence.qml).",
           label="Also write a confidence raster beside the output (.confidence.tif)"),
    Option("palette", "choice", "auto", "Write a map domain as a map: one band of the nearest "
           "colours of the palette the checkpoint recorded, with the colour table. auto: when "
           "it has one; off: continuous colours.", choices=("auto", "on", "off"),
           label="Map output as a paletted raster"),
    Option("stac", "flag", False,
           "Also write a STAC Item beside each output (<output>.stac.json); a batch also "
           "writes collection.json listing them."),
    Option("compile", "flag", False,
           "torch.compile the generator (faster on GPUs after a warm-up)."),
    Option("skip_existing", "flag", False,
           "Leave complete outputs alone (resume a batch); adds a missing --confidence raster."),
    OVERWRITE,
    SHARD.but(help=SHARD.help + " An array task leaves complete outputs alone (as "
              "--skip-existing) unless --overwrite."),
    Option("threads", "int", None,
           "Threads for the generator on the CPU and for GDAL's compression (default: all "
           "cores, or $GDAL_NUM_THREADS for GDAL).", short="-j", minimum=1),
)

# -- tile ----------------------------------------------------------------------------------

TILE = Command(
    "tile",
    FILES_FROM,
    Option("size", "int", 256, "Chip width and height in pixels.",
           label="Chip size (pixels)", minimum=1),
    Option("overlap", "int", 0, "Pixels shared by neighbouring chips.",
           label="Chip overlap (pixels)", minimum=0),
    BANDS.but(help="Bands to keep, numbered from 1 (default: all).",
              label="Bands to keep, e.g. 1,2,3 (empty: all)"),
    AOI.but(help="Keep only chips that intersect these polygons (any CRS).",
            label="Area of interest (polygons)"),
    MAX_NODATA.but(label="Largest nodata fraction of a kept chip (0 to 1)"),
    MIN_STD.but(label="Smallest band standard deviation of a kept chip"),
    CRS,
    RES,
    ALIGN_TO,
    MAX_UPSAMPLE,
    Option("pair", "path", None,
           "Write A/B chip pairs with this raster resampled onto the input's grid.",
           metavar="B.tif"),
    BANDS.but(name="pair_bands", help="Bands of the --pair raster to keep (default: all).",
              label=""),
    RESAMPLING,
    COMPRESS.but(default="none", help="Chip compression.", choices=choices.CHIP_COMPRESSIONS),
    Option("threads", "int", 1, "Chip-writing threads (0: write in the main thread).",
           short="-j", minimum=0),
    ALLOW_NO_CRS,
    OVERWRITE.but(help="Replace OUTDIR if it exists.", label="Replace a non-empty output folder"),
    SHARD.but(help=SHARD.help + " Task I writes OUTDIR/part-I-of-N; a complete part is left "
              "alone unless --overwrite."),
)

# -- mosaic --------------------------------------------------------------------------------

MOSAIC = Command(
    "mosaic",
    FILES_FROM,
    Option("index", "flag", False,
           "Instead of a mosaic: write FOLDER/index.gpkg (the footprints of the rasters in "
           "FOLDER, with their GEOGAN_* tags) and FOLDER/mosaic.vrt over them, for a finished "
           "batch."),
    Option("blend", "choice", choices.CHIP_BLENDS[0], "How overlapping chips are combined.",
           choices=choices.CHIP_BLENDS),
    COG.but(help="Write a Cloud Optimized GeoTIFF with overviews."),
    COMPRESS.but(help="Output compression."),
    ALLOW_NO_CRS.but(help="Accept chips without a CRS."),
    OVERWRITE.but(help="Replace OUTPUT if it exists."),
)

# -- evaluate ------------------------------------------------------------------------------

EVALUATE = Command(
    "evaluate",
    BANDS.but(help="Bands to compare (1-based, the same in both rasters). Default: all."),
    AOI.but(help="Only score pixels inside these polygons (any CRS; reprojected).",
            metavar="VECTOR"),
    Option("baseline", "choice", None, "Also score a classical baseline (needs --source).",
           choices=choices.BASELINES),
    Option("source", "path", None,
           "The raster that was translated into PREDICTION (for --baseline).",
           metavar="SOURCE"),
    Option("delta", "float", None, "Accuracy threshold in raster units. Default: 5 on 8-bit data."),
    Option("data_range", "float", None,
           "Value range L for PSNR and SSIM. Default: 255 on 8-bit data, else the "
           "reference's range per band."),
    Option("resampling", "choice", "bilinear",
           "How REFERENCE (and SOURCE) are resampled when their grid differs.",
           choices=choices.EVALUATE_RESAMPLINGS),
    Option("red", "int", None,
           "The red band for NDVI (1-based). Default: the band whose colour "
           "interpretation is red.", minimum=1),
    Option("nir", "int", None,
           "The near-infrared band for NDVI (1-based). Default: the band whose colour "
           "interpretation is NIR (GDAL 3.10+).", minimum=1),
    Option("error_map", "path", None,
           "Write the per-pixel absolute error of each band (and the spectral angle, in "
           "degrees) to this GeoTIFF, on REFERENCE's grid.", metavar="PATH"),
    OVERWRITE.but(help="Replace the --error-map file if it exists."),
)

# -- train ---------------------------------------------------------------------------------

TRAIN = Command(
    "train",
    Option("model", "choice", choices.MODELS[0],
           "cyclegan: unpaired images of two domains; pix2pix: co-registered pairs; cut / "
           "fastcut: unpaired, one generator and a contrastive patch loss (faster than "
           "cyclegan, A -> B only); pix2pixhd: co-registered pairs, coarse-to-fine "
           "generator and multi-scale discriminators.", label="Model", choices=choices.MODELS),
    Option("direction", "choice", "AtoB",
           "pix2pix: BtoA swaps the roles of A and B (the right half of side-by-side "
           "images, the B/ chips or the B rasters become the input), as in "
           "pytorch-CycleGAN-and-pix2pix.",
           label="pix2pix direction", choices=("AtoB", "BtoA")),
    Option("epochs", "int", 200,
           "Passes over the chips; the learning rate decays to 0 over the second half.",
           label="Epochs"),
    Option("max_steps", "int", None,
           "Length of the run in optimiser steps instead of --epochs.",
           label="Length in optimiser steps instead of epochs (0: off)"),
    Option("batch_size", "int", 1, "", label="Batch size"),
    Option("crop", "int", 256,
           "Side of the random square crop taken from each chip, or of the random windows "
           "read from rasters (px).", label="Training crop (pixels)"),
    AOI.but(help="Rasters: draw windows only inside these polygons (any CRS), both domains.",
            label="Area of interest for the raster windows (polygons)"),
    AOI.but(name="aoi_a", help="Rasters: polygons limiting the windows of domain A.", label=""),
    AOI.but(name="aoi_b", help="Rasters: polygons limiting the windows of domain B.", label=""),
    Option("a_stack", "path", help=STACK_HELP % "each --a raster", metavar="RASTER",
           label="Rasters stacked with each domain A raster (in order)"),
    Option("b_stack", "path", help=STACK_HELP % "each --b raster", metavar="RASTER",
           label="Rasters stacked with each domain B raster (in order)"),
    MAX_NODATA.but(help="Rasters: reject windows with a larger fraction of nodata pixels.",
                   label="Rasters: largest nodata fraction of a window (0 to 1)"),
    MIN_STD.but(help="Rasters: reject near-constant windows (every band's std under this).",
                label="Rasters: smallest band standard deviation of a window"),
    CRS.but(help="Rasters: read both domains warped to this CRS."),
    RES.but(help="Rasters: read both domains warped to this pixel size."),
    ALIGN_TO.but(help="Rasters: read both domains on the CRS and pixel grid of this raster."),
    MAX_UPSAMPLE.but(help="Rasters: refuse warping them (--crs/--res, --align-to) onto a grid "
                          "of more than this many times their pixels over the same ground."),
    RESAMPLING.but(help="Rasters: resampling of warped views and of pix2pix B."),
    Option("generator", "choice", None,
           "Generator architecture [default: resnet_9blocks for cyclegan, unet_256 for "
           "pix2pix, pix2pixhd for pix2pixhd; resnet_6blocks is faster at 128 px].",
           label="Generator architecture", choices=choices.GENERATORS, optional=True,
           none_choice="model default"),
    Option("ngf", "int", 64, "Filters in the generator's first layer (width of the network; "
           f"{range_text('ngf')}).", label="Generator width (filters in the first layer)"),
    Option("upsample", "choice", "resize",
           "Generator upsampling: resize (bilinear x2 then a 3x3 convolution: no "
           "checkerboard) or deconv (transposed convolutions, as in the papers).",
           label="Generator upsampling", choices=choices.UPSAMPLES),
    Option("discriminator", "choice", choices.DISCRIMINATORS[0], "Discriminator architecture.",
           choices=choices.DISCRIMINATORS),
    Option("ndf", "int", 64, f"Filters in the discriminator's first layer ({range_text('ndf')})."),
    Option("n_layers", "int", 3, "PatchGAN layers (3 = 70x70 patches)."),
    Option("norm", "choice", choices.NET_NORMS[0], "Normalisation layers of the networks.",
           choices=choices.NET_NORMS),
    Option("gan_mode", "choice", choices.GAN_MODES[0],
           "Adversarial loss: least squares or cross-entropy.", choices=choices.GAN_MODES),
    Option("lambda_cycle", "float", 10.0, "Weight of the cycle-consistency L1 (CycleGAN)."),
    Option("lambda_identity", "float", 0.5,
           "Identity L1 weight as a fraction of --lambda-cycle (CycleGAN; 0 = off)."),
    Option("lambda_l1", "float", 100.0, "Weight of the L1 to the target (pix2pix)."),
    Option("pool_size", "int", 50,
           "Generated images kept for the discriminators (CycleGAN; 0 = none)."),
    Option("lambda_nce", "float", None,
           "Weight of the PatchNCE loss (CUT) [default: 1 for cut, 10 for fastcut]."),
    Option("nce_patches", "int", 256,
           "Locations sampled per encoder layer for PatchNCE (CUT)."),
    Option("num_d", "int", 3,
           "Discriminator scales (pix2pixhd): the coarsest sees the crop downsampled "
           "2^(num_d - 1) times.", minimum=1),
    Option("lambda_feat", "float", 10.0,
           "Weight of the feature-matching and perceptual losses (pix2pixhd; 0 = off)."),
    Option("vgg_weights", "path", None,
           "VGG19 weights (torchvision's vgg19 state dict, .safetensors or .pth) for the "
           "perceptual loss (pix2pixhd); without them that loss is off. geogan downloads "
           "nothing.", metavar="FILE"),
    Option("lr", "float", 2e-4, "Adam learning rate.", label="Learning rate"),
    DEVICE,
    Option("precision", "choice", "auto", "auto = bf16 autocast on CUDA, fp32 on the CPU.",
           choices=choices.TRAIN_PRECISIONS),
    Option("compile", "flag", False,
           "torch.compile the networks (slow first step, faster after; CUDA).", negatable=True),
    Option("workers", "int", None,
           "Data loader processes [default: up to 8 on CUDA, 0 on the CPU]."),
    Option("seed", "int", 0, "Random seed."),
    Option("augment", "flag", True,
           "Centre crops only: no random crops, flips or rotations.",
           flag="--no-augment"),
    Option("name_a", "str", None, "Name of domain A [default: its folder name]."),
    Option("name_b", "str", None, "Name of domain B [default: its folder name]."),
    Option("log_every", "int", 50, "Steps between loss log rows (losses.csv)."),
    Option("preview_every", "int", 500, "Steps between preview PNGs."),
    Option("save_every", "int", 1000,
           "Steps between checkpoints (one is also written at the end)."),
    Option("resume", "flag", False,
           "Continue the run in -o where it stopped (same settings).",
           label="Continue the run in the run folder (same settings)"),
    OVERWRITE.but(help="Replace an existing run folder.", label="Replace an existing run folder"),
)

# -- demo and export -----------------------------------------------------------------------

DEMO = Command(
    "demo",
    Option("pretrained", "flag", False,
           "Skip training; translate with the model shipped with geogan."),
    Option("steps", "int", 150, "Training steps (four 128 px windows each); fewer is faster "
           "and blurrier."),
    Option("threads", "int", 1,
           "torch CPU threads for training and translating. The default, 1, gives the same "
           "scores on every machine and cannot be slowed by other work competing for the "
           "cores; more threads train faster on an idle machine and give other scores.",
           short="-j", minimum=1),
    Option("seed", "int", 0, "Seed of the training's random windows and weights.", minimum=0),
    DEVICE,
    OVERWRITE.but(help="Replace the output folder if it exists."),
)

EXPORT = Command(
    "export",
    DIRECTION.but(help="Which generator of a CycleGAN checkpoint to export."),
    Option("opset", "int", None, "ONNX opset version (default 18, for onnxruntime >= 1.14)."),
    OVERWRITE.but(help="Replace existing output files."),
    Option("verify", "flag", True, "Skip the check that onnxruntime reproduces torch's output.",
           flag="--no-verify"),
)

#: Every command that has an option table, by name.
COMMANDS: dict[str, Command] = {c.name: c for c in (TRANSLATE, TILE, MOSAIC, EVALUATE, TRAIN,
                                                    DEMO, EXPORT)}
