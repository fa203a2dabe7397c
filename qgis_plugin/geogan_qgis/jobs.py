"""The geogan jobs behind the algorithms: command-line arguments and library calls.

Each builder returns a :class:`~.backend.Job` that the backend runs either in
process (importing geogan only then) or as ``geogan --progress json ARGS``. In ARGS the
positional paths come after ``--`` and every option value right after its flag, so a
relative path that starts with "-" is never read as an option.
Nothing here imports QGIS, geogan or torch at import time.

Checkpoint metadata is read with the torch-free reader of geogan's ground
floor (``geogan_qgis.contract.checkpoint``), so the plugin can check an input's band
count before it starts a run, even when QGIS's Python has no geogan. The
defaults of the job builders are the options' defaults there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .backend import BackendError, Job, dialog_message
from .contract import checkpoint as schema
from .contract import choices, names
from .contract import options as contract_options
from .contract.options import TILE, TRAIN, TRANSLATE, Command
from .contract.stacking import stack_problem

#: Seconds a cancelled training run may take to save its checkpoint before it is killed.
TRAIN_STOP_GRACE_S = 60.0

Progress = Callable[..., None]
Cancel = Callable[[], bool]


# -- checkpoint metadata ------------------------------------------------------------------------

def resolve_checkpoint(path: str | Path) -> Path:
    """A ``.safetensors`` file, its ``.json`` sidecar, or a run folder -> the weights file."""
    try:
        return schema.resolve_checkpoint(path)
    except schema.MetadataError as exc:
        raise BackendError(str(exc)) from exc


@dataclass(frozen=True)
class CheckpointInfo:
    """What the plugin checks before translating: directions and bands per domain."""

    path: Path
    meta: schema.CheckpointMeta

    @property
    def directions(self) -> tuple[str, ...]:
        return self.meta.directions

    @property
    def bands(self) -> dict[str, int]:
        return {name: domain.band_count for name, domain in self.meta.domains.items()}

    def input_bands(self, direction: str) -> int:
        return self.meta.input_bands(direction)

    def output_bands(self, direction: str) -> int:
        return self.meta.output_bands(direction)

    def map_colours(self, direction: str) -> int:
        """The colours of the target domain's palette (a map domain), 0 for none."""
        domain = self.meta.domains.get(choices.sides_of(direction)[1])
        palette = domain.palette if domain is not None else None
        return len(palette.get("colours") or ()) if palette else 0


def checkpoint_info(path: str | Path) -> CheckpointInfo:
    """Directions and band counts of a checkpoint, from its metadata alone."""
    p = resolve_checkpoint(path)
    try:
        return CheckpointInfo(p, schema.read_checkpoint_meta(p))
    except schema.MetadataError as exc:
        raise BackendError(str(exc)) from exc


def parse_bands(text: str | None) -> tuple[int, ...] | None:
    """``"1,2,3"`` -> ``(1, 2, 3)``; empty -> None (all bands but an alpha band)."""
    try:
        bands = contract_options.parse_bands(text)
    except ValueError as exc:
        raise BackendError(f"Input bands {text!r} is not a list of band numbers; write them "
                           "like 1,2,3") from exc
    if bands is None:
        return None
    if not bands or min(bands) < 1:
        raise BackendError(f"Input bands {text!r}: band numbers start at 1; write them like "
                           "1,2,3")
    return bands


def check_translate_input(checkpoint: str | Path, direction: str, raster: str,
                          bands: int, stack: Sequence[tuple[str, int]] = ()) -> CheckpointInfo:
    """Fail early, with a clear message, when a checkpoint cannot translate ``raster``
    (``bands`` data bands) stacked with ``stack`` (each raster's file name and data bands)."""
    info = checkpoint_info(checkpoint)
    if direction not in info.directions:
        raise BackendError(f"checkpoint {checkpoint} has no '{direction}' generator; "
                           f"available: {', '.join(info.directions) or 'none'}")
    domain = info.meta.domains.get(choices.sides_of(direction)[0])
    given = [{"source": Path(raster).name, "bands": bands}] + \
        [{"source": name, "bands": n} for name, n in stack] if stack else None
    problem = stack_problem(domain.stack if domain is not None else None, given)
    if problem is not None:
        raise BackendError(dialog_message(problem, "translate"))
    bands += sum(n for _, n in stack)
    expected = info.input_bands(direction)
    if bands != expected:
        raise BackendError(f"{raster} has {bands} band(s) but the checkpoint's {direction} "
                           f"generator expects {expected}; choose a {expected}-band raster "
                           "or another checkpoint")
    return info


# -- jobs ---------------------------------------------------------------------------------------

def cli_args(command: Command, values: dict[str, Any]) -> list[str]:
    """Command-line arguments for option ``values`` (library names), spelled by the contract.

    None and ``()`` are left out (the command's default); a flag is passed when its value
    differs from its default (``--overwrite``, ``--no-augment``, ``--no-compile``).
    """
    args: list[str] = []
    for name, value in values.items():
        opt = command[name]
        if value is None or value == ():
            continue
        if opt.kind == "flag":
            if bool(value) == bool(opt.default):
                continue
            if opt.negatable and not value:
                args.append("--no-" + opt.cli_flag[2:])
            else:
                args.append(opt.cli_flag)
        elif opt.kind == "bands":
            args += [opt.cli_flag, ",".join(str(b) for b in value)]
        elif opt.kind == "bounds":
            args += [opt.cli_flag, *(repr(float(v)) for v in value)]
        elif opt.kind == "float":
            args += [opt.cli_flag, repr(float(value))]
        elif opt.kind == "path" and isinstance(value, (tuple, list)):  # --stack A B
            args += [opt.cli_flag, *(str(v) for v in value)]
        else:
            args += [opt.cli_flag, str(value)]
    return args


def translate_job(checkpoint: Path, source: Path, output: Path, *, overwrite: bool = True,
                  **options: Any) -> Job:
    """Translate one raster into ``output`` (a GeoTIFF with the input's georeference).

    ``options`` are translate options by their library names (``tile=256``,
    ``norm="window"``, ``bands=(1, 2, 3)``; see geogan.contract.options.TRANSLATE); those
    not given take geogan's defaults, None lets geogan choose (``batch_size`` for the
    device, ``bands``: all but an alpha band).
    """
    unknown = sorted(set(options) - set(TRANSLATE))
    if unknown:
        raise TypeError(f"translate_job: unknown options {', '.join(unknown)}")
    values = {name: TRANSLATE.default_of(name) for name in ("direction", "tile", "overlap",
                                                            "device", "norm")}
    values.update({k: (None if v in (0, "") and TRANSLATE[k].default is None else v)
                   for k, v in options.items()})
    values["overwrite"] = overwrite
    args = ["translate", "-o", str(output), *cli_args(TRANSLATE, values),
            "--", str(checkpoint), str(source)]
    direction = values.pop("direction")

    def run(progress: Progress, cancel: Cancel) -> Any:
        from geogan.translate import TranslateConfig, translate_files

        config = TranslateConfig(**{k: (str(v) if k == "stats" and v else v)
                                    for k, v in values.items()})
        return translate_files(checkpoint, [source], output, config, progress=progress,
                               cancel=cancel, direction=direction)

    return Job(tuple(args), (Path(output),), run, desc="translating")


def tile_job(source: Path, outdir: Path, *, size: int = TILE.default_of("size"),
             overlap: int = TILE.default_of("overlap"), aoi: Path | None = None,
             max_nodata: float = TILE.default_of("max_nodata"),
             min_std: float = TILE.default_of("min_std"),
             overwrite: bool = False, bands: tuple[int, ...] | None = None) -> Job:
    """Cut ``source`` into chips in ``outdir`` with ``outdir/index.gpkg``; ``bands``: which."""
    values = {"size": size, "overlap": overlap, "max_nodata": max_nodata, "min_std": min_std,
              "aoi": aoi, "bands": bands or None, "overwrite": overwrite}
    args = ["tile", "-o", str(outdir), *cli_args(TILE, values), "--", str(source)]

    def run(progress: Progress, cancel: Cancel) -> Any:
        from geogan.tiling import TileConfig, tile_rasters

        return tile_rasters([source], outdir, TileConfig(**values), progress=progress,
                            cancel=cancel)

    return Job(tuple(args), (Path(outdir),), run, desc="tiling")


def _train_inputs(value: Path | Sequence[Path] | None) -> Path | tuple[Path, ...] | None:
    """One chip folder (or raster) as a path, several rasters as a tuple."""
    if value is None or isinstance(value, Path):
        return value
    paths = tuple(Path(v) for v in value)
    return paths[0] if len(paths) == 1 else paths


def train_job(a: Path | Sequence[Path] | None, b: Path | Sequence[Path] | None,
              run_dir: Path, *,
              model: str = TRAIN.default_of("model"), epochs: int = TRAIN.default_of("epochs"),
              max_steps: int | None = None, batch_size: int = TRAIN.default_of("batch_size"),
              crop: int = TRAIN.default_of("crop"), generator: str | None = None,
              ngf: int = TRAIN.default_of("ngf"), lr: float = TRAIN.default_of("lr"),
              device: str = TRAIN.default_of("device"), resume: bool = False,
              overwrite: bool = False, aoi: Path | None = None,
              max_nodata: float = TRAIN.default_of("max_nodata"),
              min_std: float = TRAIN.default_of("min_std"),
              upsample: str = TRAIN.default_of("upsample"),
              direction: str = TRAIN.default_of("direction"),
              a_stack: Sequence[Path] | None = None,
              b_stack: Sequence[Path] | None = None) -> Job:
    """Train on chip folders or rasters ``a`` and ``b``; the checkpoint lands in ``run_dir``.

    ``a``/``b`` are one chip folder each, or raster files (one or several) that geogan
    samples in random windows; ``aoi``, ``max_nodata`` and ``min_std`` limit those
    windows (rasters only); ``a_stack``/``b_stack`` are rasters read with each raster of
    ``a``/``b`` as one input (``--a-stack``), in order. With ``resume`` the run in
    ``run_dir`` continues with its stored settings; only the data (when given), the
    length of the run and the device are taken from here. A cancelled or failed run
    keeps its folder (the last checkpoint can be resumed).
    """
    a_in, b_in = _train_inputs(a), _train_inputs(b)
    # on resume only the data, the length of the run and the device
    values: dict[str, Any] = {"epochs": epochs, "device": device, "max_steps": max_steps or None}
    if resume:
        values["resume"] = True
    else:
        values.update(model=model, batch_size=batch_size, crop=crop, ngf=ngf, lr=lr,
                      upsample=upsample, generator=generator or None, aoi=aoi,
                      max_nodata=max_nodata, min_std=min_std, overwrite=overwrite,
                      a_stack=tuple(a_stack or ()), b_stack=tuple(b_stack or ()))
        if direction != TRAIN.default_of("direction"):  # pix2pix only
            values["direction"] = direction
    args = ["train", "-o", str(run_dir)]
    # one --a (--b) per path: a value after the first that starts with "-" would be an option
    for flag, paths in (("--a", a_in), ("--b", b_in)):
        if paths is not None:
            args += [item for p in _as_tuple(paths) for item in (flag, str(p))]
    args += cli_args(TRAIN, values)

    def run(progress: Progress, cancel: Cancel) -> Any:
        from geogan.samplers import WindowConfig
        from geogan.train import TrainConfig, resume_config, train

        options = {k: v for k, v in values.items() if k != "resume"}
        if resume:
            overrides = {k: v for k, v in options.items() if v is not None}
            if a_in is not None:
                overrides["a"] = a_in
            if b_in is not None:
                overrides["b"] = b_in
            config = resume_config(run_dir, **overrides)
        else:
            windows = WindowConfig.take(options)
            config = TrainConfig(a=a_in, b=b_in, output=run_dir, windows=windows, **options)
        return train(config, progress=progress, cancel=cancel)

    return Job(tuple(args), (Path(run_dir), Path(run_dir) / names.RUN_CHECKPOINT_NAME), run,
               desc="training", keep_partial=True, stop_grace_s=TRAIN_STOP_GRACE_S)


def _as_tuple(value: Path | tuple[Path, ...]) -> tuple[Path, ...]:
    return value if isinstance(value, tuple) else (value,)
