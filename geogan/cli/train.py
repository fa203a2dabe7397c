"""``geogan train``: parse options -> TrainConfig -> :func:`geogan.train.train`."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from geogan.cli._options import ManyValues
from geogan.cli._result import emit


class RegistryChoice(click.Choice):
    """A ``click.Choice`` whose names come from a library registry, read when first needed.

    ``geogan --help`` imports every command module; this keeps torch out of that.
    """

    def __init__(self, load: Callable[[], Sequence[str]]) -> None:
        self._load = load
        self._names: list[str] | None = None
        self.case_sensitive = True

    @property  # type: ignore[override]
    def choices(self) -> Sequence[str]:
        if self._names is None:
            self._names = list(self._load())
        return self._names

    @choices.setter
    def choices(self, value: Sequence[str]) -> None:
        self._names = list(value)


def _gan_models() -> Sequence[str]:
    from geogan.models.gan import GAN_MODELS

    return list(GAN_MODELS)


def _generators() -> Sequence[str]:
    from geogan.models import GENERATORS

    return list(GENERATORS)


def _upsamples() -> Sequence[str]:
    from geogan.models import UPSAMPLES

    return list(UPSAMPLES)


def _discriminators() -> Sequence[str]:
    from geogan.models import DISCRIMINATORS

    return list(DISCRIMINATORS)


#: CLI parameter name -> TrainConfig field, where they differ.
_FIELD = {"a_dir": "a", "b_dir": "b", "compile_": "compile", "no_augment": "augment"}
#: Options of the random windows drawn from rasters (geogan.samplers.WindowConfig).
_WINDOW_OPTIONS = ("aoi", "aoi_a", "aoi_b", "max_nodata", "min_std", "crs", "res", "align_to",
                   "resampling")
#: The resampling methods of tile's warped views (geogan.tiling.RESAMPLING; no rasterio here).
_RESAMPLING = ("nearest", "bilinear", "cubic", "cubic_spline", "lanczos", "average", "mode")


def _inputs(values: tuple[str, ...]) -> Path | tuple[Path, ...] | None:
    """``--a`` values: None, one path, or several (files, globs, @LIST)."""
    if not values:
        return None
    return Path(values[0]) if len(values) == 1 else tuple(Path(v) for v in values)


@click.command("train")
@click.option("--model", type=RegistryChoice(_gan_models), default="cyclegan",
              show_default=True,
              help="cyclegan: unpaired images of two domains; pix2pix: co-registered pairs; "
                   "cut / fastcut: unpaired, one generator and a contrastive patch loss "
                   "(faster than cyclegan, A -> B only).")
@click.option("--a", "a_dir", cls=ManyValues, metavar="RASTERS|CHIPS",
              help="Domain A: rasters (files, globs, VRTs, @LIST of paths), sampled in random "
                   "windows; or one folder of chips (GeoTIFF/PNG/JPEG; pix2pix: also the "
                   "folder of 'geogan tile --pair' with A/ and B/, or of side-by-side A|B "
                   "images).")
@click.option("--b", "b_dir", cls=ManyValues, metavar="RASTERS|CHIPS",
              help="Domain B: rasters or one folder of chips (pix2pix: B rasters are read "
                   "over A's windows; B chips are paired with A by file name).")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Run folder: model.safetensors, losses.csv, loss_plot.png, previews/.")
@click.option("--epochs", type=int, default=200, show_default=True,
              help="Passes over the chips; the learning rate decays to 0 over the second half.")
@click.option("--max-steps", type=int, default=None,
              help="Length of the run in optimiser steps instead of --epochs.")
@click.option("--batch-size", type=int, default=1, show_default=True)
@click.option("--crop", type=int, default=256, show_default=True,
              help="Side of the random square crop taken from each chip, or of the random "
                   "windows read from rasters (px).")
@click.option("--aoi", type=click.Path(path_type=Path), metavar="VECTOR_FILE",
              help="Rasters: draw windows only inside these polygons (any CRS), both domains.")
@click.option("--aoi-a", type=click.Path(path_type=Path), metavar="VECTOR_FILE",
              help="Rasters: polygons limiting the windows of domain A.")
@click.option("--aoi-b", type=click.Path(path_type=Path), metavar="VECTOR_FILE",
              help="Rasters: polygons limiting the windows of domain B.")
@click.option("--max-nodata", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True,
              help="Rasters: reject windows with a larger fraction of nodata pixels.")
@click.option("--min-std", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
              help="Rasters: reject near-constant windows (every band's std under this).")
@click.option("--crs", metavar="EPSG:XXXX", help="Rasters: read both domains warped to this CRS.")
@click.option("--res", type=float, metavar="R",
              help="Rasters: read both domains warped to this pixel size.")
@click.option("--align-to", type=click.Path(path_type=Path), metavar="REF.tif",
              help="Rasters: read both domains on the CRS and pixel grid of this raster.")
@click.option("--resampling", type=click.Choice(_RESAMPLING), default="bilinear",
              show_default=True, help="Rasters: resampling of warped views and of pix2pix B.")
@click.option("--generator", type=RegistryChoice(_generators), default=None,
              help="Generator architecture [default: resnet_9blocks for cyclegan, unet_256 "
                   "for pix2pix; resnet_6blocks is faster at 128 px].")
@click.option("--ngf", type=int, default=64, show_default=True,
              help="Filters in the generator's first layer (width of the network).")
@click.option("--upsample", type=RegistryChoice(_upsamples), default="resize", show_default=True,
              help="Generator upsampling: resize (bilinear x2 then a 3x3 convolution: no "
                   "checkerboard) or deconv (transposed convolutions, as in the papers).")
@click.option("--discriminator", type=RegistryChoice(_discriminators), default="patchgan",
              show_default=True)
@click.option("--ndf", type=int, default=64, show_default=True,
              help="Filters in the discriminator's first layer.")
@click.option("--n-layers", type=int, default=3, show_default=True,
              help="PatchGAN layers (3 = 70x70 patches).")
@click.option("--norm", type=click.Choice(["instance", "batch", "none"]), default="instance",
              show_default=True)
@click.option("--gan-mode", type=click.Choice(["lsgan", "vanilla"]), default="lsgan",
              show_default=True, help="Adversarial loss: least squares or cross-entropy.")
@click.option("--lambda-cycle", type=float, default=10.0, show_default=True,
              help="Weight of the cycle-consistency L1 (CycleGAN).")
@click.option("--lambda-identity", type=float, default=0.5, show_default=True,
              help="Identity L1 weight as a fraction of --lambda-cycle (CycleGAN; 0 = off).")
@click.option("--lambda-l1", type=float, default=100.0, show_default=True,
              help="Weight of the L1 to the target (pix2pix).")
@click.option("--pool-size", type=int, default=50, show_default=True,
              help="Generated images kept for the discriminators (CycleGAN; 0 = none).")
@click.option("--lambda-nce", type=float, default=None,
              help="Weight of the PatchNCE loss (CUT) [default: 1 for cut, 10 for fastcut].")
@click.option("--nce-patches", type=int, default=256, show_default=True,
              help="Locations sampled per encoder layer for PatchNCE (CUT).")
@click.option("--lr", type=float, default=2e-4, show_default=True, help="Adam learning rate.")
@click.option("--device", default="auto", show_default=True,
              help="auto, cpu, cuda or cuda:N.")
@click.option("--precision", type=click.Choice(["auto", "bf16", "fp16", "fp32"]),
              default="auto", show_default=True,
              help="auto = bf16 autocast on CUDA, fp32 on the CPU.")
@click.option("--compile/--no-compile", "compile_", default=False, show_default=True,
              help="torch.compile the networks (slow first step, faster after; CUDA).")
@click.option("--workers", type=int, default=None,
              help="Data loader processes [default: up to 8 on CUDA, 0 on the CPU].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-augment", is_flag=True,
              help="Centre crops only: no random crops, flips or rotations.")
@click.option("--name-a", default=None, help="Name of domain A [default: its folder name].")
@click.option("--name-b", default=None, help="Name of domain B [default: its folder name].")
@click.option("--log-every", type=int, default=50, show_default=True,
              help="Steps between loss log rows (losses.csv).")
@click.option("--preview-every", type=int, default=500, show_default=True,
              help="Steps between preview PNGs.")
@click.option("--save-every", type=int, default=1000, show_default=True,
              help="Steps between checkpoints (one is also written at the end).")
@click.option("--resume", is_flag=True,
              help="Continue the run in -o where it stopped (same settings).")
@click.option("--overwrite", is_flag=True, help="Replace an existing run folder.")
def command(**params: Any) -> None:
    """Train a CycleGAN, pix2pix or CUT translator, from rasters or from chip folders.

    Rasters (files, globs, VRTs, @LIST) are sampled in random --crop windows over their
    valid ground, weighted by area; an epoch is (valid pixels / crop^2) windows. One
    folder per domain is read as chips from 'geogan tile'.

    \b
    Examples:
      geogan train --a naip_2009.tif --b naip_2020.tif -o run --max-steps 2000
      geogan train --a 2009/*.tif --b 2020/*.tif -o run --aoi west.gpkg --max-nodata 0.1
      geogan train --model pix2pix --a sat/*.tif --b map/*.tif -o run_p2p
      geogan train --a chips_2009 --b chips_2020 -o run --epochs 50
      geogan train --model pix2pix --a pairs -o run_p2p   (pairs/A, pairs/B)
      geogan train --model cut --upsample resize --a chips_2009 --b chips_2020 -o run_cut
      torchrun --nproc_per_node 4 -m geogan train --a A --b B -o run   (4 GPUs)
    """
    from geogan.cli._progress import reporter
    from geogan.samplers import WindowConfig
    from geogan.train import TrainConfig, resume_config, train

    ctx = click.get_current_context()
    windows = WindowConfig(**{k: params.pop(k) for k in _WINDOW_OPTIONS})
    params["a_dir"], params["b_dir"] = _inputs(params["a_dir"]), _inputs(params["b_dir"])
    values = {_FIELD.get(k, k): v for k, v in params.items()}
    values["augment"] = not params["no_augment"]
    values["windows"] = windows
    if params["resume"]:
        given = {_FIELD.get(k, k): v for k, v in params.items()
                 if ctx.get_parameter_source(k) not in (ParameterSource.DEFAULT,
                                                        ParameterSource.DEFAULT_MAP)}
        if "augment" in given:
            given["augment"] = not params["no_augment"]
        if any(ctx.get_parameter_source(k) not in (ParameterSource.DEFAULT,
                                                    ParameterSource.DEFAULT_MAP)
               for k in _WINDOW_OPTIONS):
            given["windows"] = windows
        given.pop("resume", None)
        given.pop("output", None)
        config = resume_config(params["output"], **given)
    else:
        config = TrainConfig(**values)
    with reporter("train", unit="step") as rep:
        path = train(config, progress=rep)
    if os.environ.get("RANK", "0") == "0":  # one line, also under torchrun
        from geogan.checkpoint import read_metadata

        meta = read_metadata(path)
        emit({"checkpoint": path, "run": path.parent, "model": meta.get("model"),
              "step": meta.get("step"), "epoch": meta.get("epoch"),
              "losses": meta.get("losses", {})}, f"Model written to {path}")
