"""``geogan train``: parse options -> TrainConfig -> :func:`geogan.train.train`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from geogan.cli._options import ManyValues, OutputPath, spec_option, spec_options
from geogan.cli._result import emit
from geogan.contract.options import TRAIN


def _inputs(values: tuple[str, ...]) -> Path | tuple[Path, ...] | None:
    """``--a`` values: None, one path, or several (files, globs, @LIST)."""
    if not values:
        return None
    return Path(values[0]) if len(values) == 1 else tuple(Path(v) for v in values)


@click.command("train")
@click.option("--a", "a", cls=ManyValues, metavar="RASTERS|CHIPS",
              help="Domain A: rasters (files, globs, VRTs, @LIST of paths), sampled in random "
                   "windows; or one folder of chips (GeoTIFF/PNG/JPEG; pix2pix: also the "
                   "folder of 'geogan tile --pair' with A/ and B/, a folder of several of "
                   "those, or of side-by-side A|B images; several folders add up).")
@click.option("--b", "b", cls=ManyValues, metavar="RASTERS|CHIPS",
              help="Domain B: rasters or one folder of chips (pix2pix: B rasters are read "
                   "over A's windows; B chips are paired with A by file name, the i-th "
                   "--b folder with the i-th --a folder).")
@click.option("-o", "--output", type=OutputPath(what="a run folder"), required=True,
              help="Run folder: model.safetensors, losses.csv, loss_plot.png, previews/.")
@spec_options(TRAIN, skip=("a_stack", "b_stack"))
@spec_option(TRAIN["a_stack"], cls=ManyValues)
@spec_option(TRAIN["b_stack"], cls=ManyValues)
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
      geogan train --model pix2pix --a scenes -o run_p2p  (scenes/*/A, scenes/*/B)
      geogan train --model pix2pix --a facades/train --direction BtoA -o run_p2p
      geogan train --model cut --upsample resize --a chips_2009 --b chips_2020 -o run_cut
      torchrun --nproc_per_node 4 -m geogan train --a A --b B -o run   (4 GPUs)
    """
    from geogan.cli._progress import reporter
    from geogan.samplers import WindowConfig
    from geogan.train import TrainConfig, resume_config, train

    ctx = click.get_current_context()
    windows = WindowConfig.take(params)
    params["a"], params["b"] = _inputs(params["a"]), _inputs(params["b"])
    values = dict(params)
    values["windows"] = windows
    if params["resume"]:
        given = {k: v for k, v in params.items()
                 if ctx.get_parameter_source(k) not in (ParameterSource.DEFAULT,
                                                        ParameterSource.DEFAULT_MAP)}
        if any(ctx.get_parameter_source(k) not in (ParameterSource.DEFAULT,
                                                    ParameterSource.DEFAULT_MAP)
               for k in WindowConfig.names()):
            given["windows"] = windows
        given.pop("resume", None)
        given.pop("output", None)
        config = resume_config(params["output"], **given)
    else:
        config = TrainConfig(**values)
    with reporter("train", unit="steps") as rep:
        path = train(config, progress=rep)
    from geogan.devices import launch_env

    if launch_env().is_main:  # one line, also under torchrun
        from geogan.checkpoint import read_checkpoint_meta

        meta = read_checkpoint_meta(path)
        emit({"checkpoint": path, "run": path.parent, "model": meta.model, "step": meta.step,
              "epoch": meta.epoch, "losses": meta.losses}, f"Model written to {path}")
