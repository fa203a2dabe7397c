"""The geogan jobs behind the algorithms: command-line arguments and library calls.

Each builder returns a :class:`~.backend.Job` that the backend runs either in
process (importing geogan only then) or as ``geogan --progress json ARGS``.
Nothing here imports QGIS, geogan or torch at import time.

Also a dependency-free reader of checkpoint metadata (the JSON in the
safetensors header), so the plugin can check an input's band count before it
starts a run, even when QGIS's Python has no geogan.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .backend import BackendError, Job

DIRECTIONS = ("a2b", "b2a")
DEVICES = ("auto", "cpu", "cuda")
MODELS = ("cyclegan", "pix2pix", "cut", "fastcut")
#: Generator upsampling choices (geogan.models.UPSAMPLES).
UPSAMPLES = ("deconv", "resize")
#: File name of the checkpoint inside a training run folder (as in geogan.checkpoint).
RUN_CHECKPOINT_NAME = "model.safetensors"
#: File name of the tile index inside a chip folder (as in geogan.tiling).
INDEX_NAME = "index.gpkg"
#: Seconds a cancelled training run may take to save its checkpoint before it is killed.
TRAIN_STOP_GRACE_S = 60.0
#: Generator architectures (geogan.models.GENERATORS; listed here so QGIS starts without torch).
GENERATORS = ("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128")
#: Instance-norm statistics (geogan.normstats.NORM_MODES, the default first; listed here so
#: QGIS starts without geogan).
NORMS = ("global", "dense", "window")
_HEADER_KEY = "geogan"
_MAX_HEADER = 100 * 1024 * 1024

Progress = Callable[..., None]
Cancel = Callable[[], bool]


# -- checkpoint metadata ------------------------------------------------------------------------

def resolve_checkpoint(path: str | Path) -> Path:
    """A ``.safetensors`` file, its ``.json`` sidecar, or a run folder -> the weights file."""
    p = Path(path)
    if p.is_dir():
        p = p / RUN_CHECKPOINT_NAME
    elif p.suffix == ".json":
        p = p.with_suffix(".safetensors")
    if not p.is_file():
        raise BackendError(f"checkpoint {path} not found; give a .safetensors file written "
                           "by 'geogan train' or its run folder")
    return p


def read_checkpoint_metadata(path: str | Path) -> dict[str, Any]:
    """The geogan metadata of a checkpoint, read from the safetensors header without torch."""
    p = resolve_checkpoint(path)
    text: str | None = None
    try:
        with open(p, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            if not 0 < size <= _MAX_HEADER:
                raise ValueError("bad header size")
            header = json.loads(fh.read(size).decode("utf-8"))
        text = (header.get("__metadata__") or {}).get(_HEADER_KEY)
    except (OSError, ValueError, struct.error, AttributeError) as exc:
        raise BackendError(f"checkpoint {p} is truncated or not a safetensors file ({exc}); "
                           "use another checkpoint or retrain") from exc
    if text is None:
        sidecar = p.with_suffix(".json")
        if not sidecar.is_file():
            raise BackendError(f"{p} has no geogan metadata; it was not written by geogan")
        text = sidecar.read_text(encoding="utf-8")
    try:
        meta = json.loads(text)
    except ValueError as exc:
        raise BackendError(f"metadata of {p} is not valid JSON ({exc}); "
                           "use another checkpoint") from exc
    if not isinstance(meta, dict) or meta.get("format") != "geogan-checkpoint":
        raise BackendError(f"{p} is not a geogan checkpoint")
    return meta


@dataclass(frozen=True)
class CheckpointInfo:
    """What the plugin checks before translating: directions and bands per domain."""

    path: Path
    directions: tuple[str, ...]
    bands: dict[str, int]

    def input_bands(self, direction: str) -> int:
        return self.bands["a" if direction == "a2b" else "b"]

    def output_bands(self, direction: str) -> int:
        return self.bands["b" if direction == "a2b" else "a"]


def checkpoint_info(path: str | Path) -> CheckpointInfo:
    """Directions and band counts of a checkpoint, from its metadata alone."""
    p = resolve_checkpoint(path)
    meta = read_checkpoint_metadata(p)
    try:
        bands = {name: len(domain["norm"]["lo"]) for name, domain in meta["domains"].items()}
        directions = tuple(sorted(meta["generators"]))
    except (KeyError, TypeError) as exc:
        raise BackendError(f"metadata of {p} lacks domains or generators; "
                           "use a checkpoint written by 'geogan train'") from exc
    return CheckpointInfo(p, directions, bands)


def parse_bands(text: str | None) -> tuple[int, ...] | None:
    """``"1,2,3"`` -> ``(1, 2, 3)``; empty -> None (all bands but an alpha band)."""
    if text is None or not str(text).strip():
        return None
    try:
        bands = tuple(int(part) for part in str(text).split(",") if part.strip())
    except ValueError as exc:
        raise BackendError(f"Input bands {text!r} is not a list of band numbers; write them "
                           "like 1,2,3") from exc
    if not bands or min(bands) < 1:
        raise BackendError(f"Input bands {text!r}: band numbers start at 1; write them like "
                           "1,2,3")
    return bands


def check_translate_input(checkpoint: str | Path, direction: str, raster: str,
                          bands: int) -> CheckpointInfo:
    """Fail early, with a clear message, when a checkpoint cannot translate ``raster``."""
    info = checkpoint_info(checkpoint)
    if direction not in info.directions:
        raise BackendError(f"checkpoint {checkpoint} has no '{direction}' generator; "
                           f"available: {', '.join(info.directions) or 'none'}")
    expected = info.input_bands(direction)
    if bands != expected:
        raise BackendError(f"{raster} has {bands} band(s) but the checkpoint's {direction} "
                           f"generator expects {expected}; choose a {expected}-band raster "
                           "or another checkpoint")
    return info


# -- jobs ---------------------------------------------------------------------------------------

def translate_job(checkpoint: Path, source: Path, output: Path, *, direction: str = "a2b",
                  tile: int = 512, overlap: int = 64, batch_size: int | None = None,
                  device: str = "auto", overwrite: bool = True, norm: str = NORMS[0],
                  stats: Path | None = None, bands: tuple[int, ...] | None = None) -> Job:
    """Translate one raster into ``output`` (a GeoTIFF with the input's georeference).

    ``batch_size`` None lets geogan choose for the device; ``norm`` picks the
    instance-norm statistics and ``stats`` a statistics file to use; ``bands`` the
    1-based input bands (None: all but an alpha band).
    """
    args = ["translate", str(checkpoint), str(source), "-o", str(output),
            "--direction", direction, "--tile", str(tile), "--overlap", str(overlap),
            "--device", device, "--norm", norm]
    if stats:
        args += ["--stats", str(stats)]
    if bands:
        args += ["--bands", ",".join(str(b) for b in bands)]
    if batch_size:
        args += ["--batch-size", str(batch_size)]
    if overwrite:
        args.append("--overwrite")

    def run(progress: Progress, cancel: Cancel) -> Any:
        from geogan.translate import TranslateConfig, translate_files

        config = TranslateConfig(tile=tile, overlap=overlap, batch_size=batch_size or None,
                                 device=device, overwrite=overwrite, norm=norm,
                                 stats=str(stats) if stats else None, bands=bands or None)
        return translate_files(checkpoint, [source], output, config, progress=progress,
                               cancel=cancel, direction=direction)

    return Job(tuple(args), (Path(output),), run, desc="translating")


def tile_job(source: Path, outdir: Path, *, size: int = 256, overlap: int = 0,
             aoi: Path | None = None, max_nodata: float = 0.0, min_std: float = 0.0,
             overwrite: bool = False) -> Job:
    """Cut ``source`` into chips in ``outdir`` with ``outdir/index.gpkg``."""
    args = ["tile", str(source), "-o", str(outdir), "--size", str(size),
            "--overlap", str(overlap), "--max-nodata", repr(float(max_nodata)),
            "--min-std", repr(float(min_std))]
    if aoi is not None:
        args += ["--aoi", str(aoi)]
    if overwrite:
        args.append("--overwrite")

    def run(progress: Progress, cancel: Cancel) -> Any:
        from geogan.tiling import TileConfig, tile_rasters

        config = TileConfig(size=size, overlap=overlap, aoi=aoi, max_nodata=max_nodata,
                            min_std=min_std, overwrite=overwrite)
        return tile_rasters([source], outdir, config, progress=progress, cancel=cancel)

    return Job(tuple(args), (Path(outdir),), run, desc="tiling")


def _train_inputs(value: Path | Sequence[Path] | None) -> Path | tuple[Path, ...] | None:
    """One chip folder (or raster) as a path, several rasters as a tuple."""
    if value is None or isinstance(value, Path):
        return value
    paths = tuple(Path(v) for v in value)
    return paths[0] if len(paths) == 1 else paths


def train_job(a: Path | Sequence[Path] | None, b: Path | Sequence[Path] | None,
              run_dir: Path, *,
              model: str = "cyclegan", epochs: int = 200, max_steps: int | None = None,
              batch_size: int = 1, crop: int = 256, generator: str | None = None,
              ngf: int = 64, lr: float = 2e-4, device: str = "auto", resume: bool = False,
              overwrite: bool = False, aoi: Path | None = None, max_nodata: float = 0.0,
              min_std: float = 0.0, upsample: str = "resize") -> Job:
    """Train on chip folders or rasters ``a`` and ``b``; the checkpoint lands in ``run_dir``.

    ``a``/``b`` are one chip folder each, or raster files (one or several) that geogan
    samples in random windows; ``aoi``, ``max_nodata`` and ``min_std`` limit those
    windows (rasters only). With ``resume`` the run in ``run_dir`` continues with its
    stored settings; only the data (when given), the length of the run and the device
    are taken from here. A cancelled or failed run keeps its folder (the last checkpoint can be
    resumed).
    """
    a_in, b_in = _train_inputs(a), _train_inputs(b)
    args = ["train", "-o", str(run_dir)]
    if a_in is not None:
        args += ["--a", *(str(p) for p in _as_tuple(a_in))]
    if b_in is not None:
        args += ["--b", *(str(p) for p in _as_tuple(b_in))]
    args += ["--epochs", str(epochs), "--device", device]
    if max_steps:
        args += ["--max-steps", str(max_steps)]
    if resume:
        args.append("--resume")
    else:
        args += ["--model", model, "--batch-size", str(batch_size), "--crop", str(crop),
                 "--ngf", str(ngf), "--lr", repr(float(lr)), "--upsample", upsample]
        if generator:
            args += ["--generator", generator]
        if aoi is not None:
            args += ["--aoi", str(aoi)]
        if max_nodata:
            args += ["--max-nodata", repr(float(max_nodata))]
        if min_std:
            args += ["--min-std", repr(float(min_std))]
        if overwrite:
            args.append("--overwrite")

    def run(progress: Progress, cancel: Cancel) -> Any:
        from geogan.samplers import WindowConfig
        from geogan.train import TrainConfig, resume_config, train

        if resume:
            overrides: dict[str, Any] = {"epochs": epochs, "device": device}
            if a_in is not None:
                overrides["a"] = a_in
            if b_in is not None:
                overrides["b"] = b_in
            if max_steps:
                overrides["max_steps"] = max_steps
            config = resume_config(run_dir, **overrides)
        else:
            windows = WindowConfig(aoi=aoi, max_nodata=max_nodata, min_std=min_std)
            config = TrainConfig(a=a_in, b=b_in, output=run_dir, model=model, epochs=epochs,
                                 max_steps=max_steps or None, batch_size=batch_size, crop=crop,
                                 generator=generator or None, ngf=ngf, lr=lr, device=device,
                                 overwrite=overwrite, windows=windows, upsample=upsample)
        return train(config, progress=progress, cancel=cancel)

    return Job(tuple(args), (Path(run_dir), Path(run_dir) / RUN_CHECKPOINT_NAME), run,
               desc="training", keep_partial=True, stop_grace_s=TRAIN_STOP_GRACE_S)


def _as_tuple(value: Path | tuple[Path, ...]) -> tuple[Path, ...]:
    return value if isinstance(value, tuple) else (value,)
