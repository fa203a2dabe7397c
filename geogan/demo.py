"""The end-to-end demo on the bundled NAIP orthophotos of 2009 and 2020.

train a small CycleGAN straight from the two orthophotos (random windows inside
their western half, no chips) -> translate the whole 2009 orthophoto to the 2020
look -> side-by-side preview PNG -> evaluate on the held-out eastern half against
2020, with histogram matching as the baseline.

With ``pretrained=True`` the training is skipped and the model shipped in
``geogan/sample_data/pretrained/`` translates instead. The sample rasters and the model are
package data: installed with geogan (from a wheel too) and found with importlib.resources.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from geogan.contract.options import DEMO, TRANSLATE
from geogan.errors import GeoganError, InputError
from geogan.fileio import FolderKind, atomic_directory
from geogan.progress import CancelCheck, ProgressCallback

log = logging.getLogger(__name__)

#: The folder of the geogan package that holds the sample rasters and the pretrained model.
DATA_FOLDER = "sample_data"
SOURCE_NAME = "naip_2009.tif"
REFERENCE_NAME = "naip_2020.tif"
PRETRAINED_NAME = "pretrained/naip_2009_to_2020.safetensors"
#: Bands shown in the preview (R, G, B of the NAIP R, G, B, NIR orthophotos).
PREVIEW_BANDS = (1, 2, 3)
#: The red and NIR bands of the NAIP orthophotos, for NDVI: given, because their colour
#: interpretation says only gray, undefined, undefined, undefined.
RED_BAND, NIR_BAND = 1, 4
TRANSLATED_NAME = "naip_2009_as_2020.tif"
#: The translation's confidence raster and its QGIS style (``translate --confidence``).
CONFIDENCE_NAME = "naip_2009_as_2020.confidence.tif"
METRICS_NAME = "metrics.json"
#: Files the demo writes at the top of its folder.
DEMO_FILES = frozenset({TRANSLATED_NAME, METRICS_NAME, "preview.png", "model.safetensors",
                        "model.json", CONFIDENCE_NAME,
                        CONFIDENCE_NAME.removesuffix(".tif") + ".qml"})


def _owned_by_demo(rel: PurePosixPath) -> bool:
    """Files geogan writes in a demo folder (run/ is geogan's too, and chips/a, chips/b of
    the demo's earlier versions, which tiled first)."""
    from geogan.tiling import CHIP_FOLDER
    from geogan.train import RUN_FOLDER

    parts = rel.parts
    if len(parts) == 1:
        return rel.name in DEMO_FILES
    if parts[0] == "aoi":
        return len(parts) == 2 and rel.suffix == ".geojson"
    if parts[0] == "chips" and len(parts) > 2 and parts[1] in ("a", "b"):
        return CHIP_FOLDER.owned(PurePosixPath(*parts[2:]))
    if parts[0] == "run":
        return RUN_FOLDER.owned(PurePosixPath(*parts[1:]))
    return False


def _demo_sub_folder(rel: PurePosixPath) -> bool:
    """Folders geogan makes in a demo folder: aoi/, run/ (and a run's), chips/a, chips/b."""
    from geogan.tiling import CHIP_FOLDER
    from geogan.train import RUN_FOLDER

    parts = rel.parts
    if parts[0] == "aoi":
        return len(parts) == 1
    if parts[0] == "run":
        return len(parts) == 1 or RUN_FOLDER.owned_dir(PurePosixPath(*parts[1:]))
    if parts[0] == "chips":
        return (len(parts) == 1 or parts[1] in ("a", "b")
                and (len(parts) == 2 or CHIP_FOLDER.owned_dir(PurePosixPath(*parts[2:]))))
    return False


#: What ``geogan demo --overwrite`` may replace: a finished demo folder, nothing else.
DEMO_FOLDER = FolderKind("demo folder", (METRICS_NAME,), _owned_by_demo, _demo_sub_folder)


def default_data_dir() -> Path:
    """``geogan/sample_data/``, installed with the package (a source checkout or a wheel)."""
    data = files("geogan").joinpath(DATA_FOLDER)
    return data if isinstance(data, Path) else Path(str(data))


@dataclass(frozen=True)
class DemoConfig:
    """What :func:`run_demo` does. The defaults finish in a few minutes on 2 CPU cores."""

    output: Path = Path("demo_output")
    data_dir: Path | None = None
    pretrained: bool = DEMO.default_of("pretrained")
    steps: int = DEMO.default_of("steps")
    chip: int = 128
    #: Four windows a step, the papers' identity weight and learning rate: steadier than
    #: 500 steps of one window at lr 3e-4 (sharper, detail 0.56 of the photo's against
    #: 0.37, but with seed 1 its SSIM fell to 0.407, below histogram matching's 0.454).
    batch_size: int = 4
    lambda_identity: float = 0.5
    lr: float = 2e-4
    generator: str = "resnet_6blocks"
    ngf: int = 16
    ndf: int = 32
    tile: int = TRANSLATE.default_of("tile")
    overlap: int = TRANSLATE.default_of("overlap")
    device: str = DEMO.default_of("device")
    #: torch CPU threads: training on a CPU is not bit-reproducible across thread counts
    #: (the order of float sums changes), so the demo fixes it; one thread also cannot be
    #: slowed by oversubscription on a busy machine.
    threads: int = DEMO.default_of("threads")
    seed: int = DEMO.default_of("seed")
    overwrite: bool = DEMO.default_of("overwrite")

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise InputError(f"`steps` must be at least 1, got {self.steps}")
        if self.threads < 1:
            raise InputError(f"`threads` must be at least 1, got {self.threads}")


@dataclass(frozen=True)
class DemoResult:
    """Where the demo put its outputs, and the held-out scores."""

    output: Path
    translated: Path
    preview: Path
    metrics: Path
    checkpoint: Path
    loss_plot: Path | None
    scores: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    #: The translation's confidence raster (0 = the model is guessing, 1 = it is sure).
    confidence: Path | None = None


def run_demo(config: DemoConfig, progress: ProgressCallback | None = None,
             cancel: CancelCheck | None = None) -> DemoResult:
    """Run the demo as ``config`` says; everything lands in ``config.output`` at once."""
    data = Path(config.data_dir) if config.data_dir is not None else default_data_dir()
    source, reference = data / SOURCE_NAME, data / REFERENCE_NAME
    for p in (source, reference):
        if not p.is_file():
            raise InputError(f"sample raster {p} not found; pass `data` pointing to geogan's "
                             "sample_data folder")
    pretrained = data / PRETRAINED_NAME
    if config.pretrained and not pretrained.is_file():
        raise InputError(f"pretrained model {pretrained} not found; run the demo without "
                         "`pretrained` to train one")
    start = time.perf_counter()
    out = Path(config.output)
    with atomic_directory(out, DEMO_FOLDER, overwrite=config.overwrite, inputs=[data]) as tmp, \
            _named_after(tmp, out):
        west, east = _halves(source, tmp / "aoi")
        if config.pretrained:
            checkpoint = tmp / "model.safetensors"
            shutil.copy2(pretrained, checkpoint)
            shutil.copy2(pretrained.with_suffix(".json"), checkpoint.with_suffix(".json"))
            loss_plot = None
        else:
            checkpoint = _train(config, source, reference, west, tmp, progress, cancel)
            loss_plot = tmp / "run" / "loss_plot.png"
        translated = tmp / TRANSLATED_NAME
        _translate(config, checkpoint, source, translated, cancel)
        _preview(source, translated, reference, tmp / "preview.png", tmp / CONFIDENCE_NAME)
        scores = _evaluate(translated, reference, source, east, cancel)
        (tmp / METRICS_NAME).write_text(json.dumps(scores, indent=2) + "\n")

    def moved(p: Path | None) -> Path | None:
        return None if p is None else out / p.relative_to(tmp)

    plot = moved(loss_plot)
    result = DemoResult(out, out / translated.name, out / "preview.png", out / METRICS_NAME,
                        out / checkpoint.relative_to(tmp),
                        plot if plot is not None and plot.exists() else None,
                        scores, time.perf_counter() - start, out / CONFIDENCE_NAME)
    log.info("demo finished in %.0f s; outputs in %s", result.seconds, out)
    return result


@contextlib.contextmanager
def _named_after(tmp: Path, out: Path) -> Iterator[None]:
    """Errors raised inside name the user's ``out`` folder, not its hidden temporary ``tmp``
    (where the demo writes until it is complete)."""
    try:
        yield
    except GeoganError as exc:
        text = exc.template
        if str(tmp) not in text:
            raise
        renamed = copy.copy(exc)
        renamed.args = (text.replace(str(tmp), str(out)), *exc.args[1:])
        raise renamed.with_traceback(exc.__traceback__) from exc.__cause__


def _halves(source: Path, folder: Path, margin: int = 0) -> tuple[Path, Path]:
    """GeoJSON polygons of the western and eastern halves of ``source`` (in its CRS).

    The western polygon stops ``margin`` pixels short of the middle (training windows lie
    wholly inside it, so with no margin they still never reach the eastern half; chips
    that only touch it, as ``geogan tile --aoi`` keeps them, need a margin of a chip).
    """
    import rasterio

    folder.mkdir(parents=True)
    with rasterio.open(source) as src:
        left, bottom, right, top = src.bounds
        crs = src.crs.to_string()
    mid = src.transform.c + src.transform.a * (src.width // 2)
    paths = []
    west_end = mid - src.transform.a * margin
    for name, (x0, x1) in (("west", (left, west_end)), ("east", (mid, right))):
        ring = [[x0, bottom], [x1, bottom], [x1, top], [x0, top], [x0, bottom]]
        feature = {"type": "Feature", "properties": {"half": name},
                   "geometry": {"type": "Polygon", "coordinates": [ring]}}
        doc = {"type": "FeatureCollection", "features": [feature],
               "crs": {"type": "name", "properties": {"name": crs}}}
        path = folder / f"{name}.geojson"
        path.write_text(json.dumps(doc))
        paths.append(path)
    return paths[0], paths[1]


def _train(config: DemoConfig, source: Path, reference: Path, west: Path, tmp: Path,
           progress: ProgressCallback | None, cancel: CancelCheck | None) -> Path:
    from geogan.train import train
    from geogan.translate.runtime import torch_threads

    train_cfg = train_config(config, source, reference, west, tmp / "run")
    log.info("training a CycleGAN (%s, ngf %d) for %d steps of batch %d on random %d px "
             "windows of the western half, %d torch thread(s)", config.generator, config.ngf,
             config.steps, config.batch_size, config.chip, config.threads)
    with torch_threads(config.threads):
        return train(train_cfg, progress=progress, cancel=cancel)


def train_config(config: DemoConfig, source: Path, reference: Path, west: Path,
                 run: Path) -> Any:
    """The demo's :class:`geogan.train.TrainConfig`: random windows inside ``west`` only."""
    from geogan.samplers import WindowConfig
    from geogan.train import TrainConfig

    return TrainConfig(
        a=source, b=reference, output=run, model="cyclegan",
        windows=WindowConfig(aoi=west, max_nodata=0.01, min_std=1.0),
        max_steps=config.steps, batch_size=config.batch_size, crop=config.chip,
        lambda_identity=config.lambda_identity, lr=config.lr,
        generator=config.generator, ngf=config.ngf, ndf=config.ndf, name_a="2009",
        name_b="2020", device=config.device, seed=config.seed,
        log_every=max(1, min(50, config.steps // 20)),
        preview_every=max(1, config.steps // 4), save_every=max(1, config.steps // 2))


def _translate(config: DemoConfig, checkpoint: Path, source: Path, output: Path,
               cancel: CancelCheck | None) -> None:
    from geogan.translate import TranslateConfig, translate_files

    cfg = TranslateConfig(tile=config.tile, overlap=config.overlap, device=config.device,
                          threads=config.threads, confidence=True)
    translate_files(checkpoint, [source], output, cfg, cancel=cancel)
    log.info("translated %s to the 2020 look", source.name)


def _evaluate(translated: Path, reference: Path, source: Path, east: Path,
              cancel: CancelCheck | None) -> dict[str, Any]:
    """Held-out scores on the eastern half: the GAN, histogram matching, and no change."""
    from geogan.evaluate import EvaluateConfig, evaluate

    bands = PREVIEW_BANDS + (NIR_BAND,)
    gan = evaluate(translated, reference, EvaluateConfig(
        bands=bands, aoi=east, baseline="histogram-match", source=source, red=RED_BAND,
        nir=NIR_BAND), cancel=cancel)
    unchanged = evaluate(source, reference, EvaluateConfig(
        bands=bands, aoi=east, red=RED_BAND, nir=NIR_BAND), cancel=cancel)
    ref_detail, ref_checker = texture_energies(reference, east)
    rows: dict[str, Any] = {}
    for s in gan.scores + unchanged.scores[:1]:
        name = "untranslated 2009" if s is unchanged.scores[0] else s.name
        rows[name] = {"rmse": s.rmse, "psnr": s.psnr, "ssim": s.ssim, "accuracy": s.accuracy,
                      **spectral_row(s), "detail": None, "checker": None}
        raster = {"prediction": translated, "untranslated 2009": source}.get(name)
        if raster is not None:  # histogram matching adds no spatial pattern of its own
            detail, checker = texture_energies(raster, east)
            rows[name].update(detail=detail / ref_detail, checker=checker / ref_checker)
    for name, r in rows.items():
        texture = "" if r["detail"] is None else (f"  detail {r['detail']:.2f}x  checker "
                                                  f"{r['checker']:.2f}x")
        log.info("eastern half vs 2020, %-18s RMSE %6.2f  SSIM %.3f  PSNR %5.2f dB%s", name,
                 r["rmse"], r["ssim"], r["psnr"] if r["psnr"] is not None else float("inf"),
                 texture)
        log.info("eastern half vs 2020, %-18s SAM %.2f deg  ERGAS %.2f  NDVI RMSE %.3f, "
                 "bias %+.3f, changed > 0.1: %.1f%%", name, r["sam"], r["ergas"],
                 r["ndvi_rmse"], r["ndvi_bias"], 100 * r["ndvi_changed"])
    return {"region": "eastern half (held out from training)", "reference": reference.name,
            "valid_pixels": gan.valid_pixels, "bands": list(bands), "scores": rows,
            "ndvi_bands": {"red": RED_BAND, "nir": NIR_BAND,
                           "identified": "given by the demo: the NAIP orthophotos are R, G, "
                                         "B, NIR but their colour interpretation says only "
                                         "gray/undefined"},
            "spectral": f"sam: mean spectral angle in degrees; ergas: 100 * sqrt(mean_b "
                        f"(RMSE_b / mean_ref_b)^2) (resolution ratio {gan.ergas_ratio:g}); "
                        "bias: mean(candidate - 2020) per band; ndvi_*: NDVI = (NIR - red) / "
                        f"(NIR + red) from red band {RED_BAND} and NIR band {NIR_BAND}, given "
                        "(the NAIP orthophotos' colour interpretation is gray/undefined), "
                        "its RMSE, bias and the share of pixels whose NDVI differs by more "
                        "than 0.1 (geogan.evaluate.spectral)",
            "texture": "detail and checker are the fine texture of the RGB bands on each "
                       "raster's own grid, divided by that of the 2020 orthophoto "
                       "(geogan.metrics.detail_energy, checker_energy): below 1 is smoother "
                       "than the photo, above 1 checker is the 2-pixel pattern of transposed "
                       "convolutions"}


def spectral_row(s: Any) -> dict[str, Any]:
    """The spectral figures of one candidate's :class:`~geogan.evaluate.Scores` as the
    demo's metrics.json (and benchmarks/quality.py) report them."""
    nd = s.ndvi
    return {"sam": s.sam, "ergas": s.ergas, "bias": [b.bias for b in s.bands],
            "ndvi_rmse": None if nd is None else nd.rmse,
            "ndvi_bias": None if nd is None else nd.bias,
            "ndvi_changed": None if nd is None else nd.changed}


def texture_energies(path: Path, area: Path) -> tuple[float, float]:
    """(detail, checker) energies of the RGB bands of ``path`` inside the polygon ``area``
    (a GeoJSON file such as the demo's ``aoi/east.geojson``), on the raster's own grid."""
    import rasterio
    from rasterio.windows import Window, from_bounds

    from geogan.metrics import checker_energy, detail_energy

    ring = np.asarray(json.loads(area.read_text())["features"][0]["geometry"]["coordinates"][0])
    box = (ring[:, 0].min(), ring[:, 1].min(), ring[:, 0].max(), ring[:, 1].max())
    with rasterio.open(path) as ds:
        win = from_bounds(*box, transform=ds.transform).round_offsets().round_lengths()
        win = win.intersection(Window(0, 0, ds.width, ds.height))
        x = ds.read(list(PREVIEW_BANDS), window=win)
        valid = ds.dataset_mask(window=win) > 0
    return detail_energy(x, valid), checker_energy(x, valid)


def _preview(source: Path, translated: Path, reference: Path, output: Path,
             confidence: Path | None = None, max_width: int = 640) -> None:
    """input | translated | reference (RGB, reference resampled onto the input grid)
    [| confidence, red (guessing) to green (sure)] as PNG."""
    import rasterio
    from PIL import Image, ImageDraw
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    with rasterio.open(source) as src:
        scale = min(1.0, max_width / src.width)
        shape = (len(PREVIEW_BANDS), max(1, round(src.height * scale)),
                 max(1, round(src.width * scale)))
        grid = {"crs": src.crs, "transform": src.transform, "width": src.width,
                "height": src.height}
        panels = [src.read(PREVIEW_BANDS, out_shape=shape, resampling=Resampling.average)]
    with rasterio.open(translated) as t:
        panels.append(t.read(PREVIEW_BANDS, out_shape=shape, resampling=Resampling.average))
    with rasterio.open(reference) as ref, WarpedVRT(ref, **grid) as vrt:
        panels.append(vrt.read(PREVIEW_BANDS, out_shape=shape, resampling=Resampling.average))
    labels = ["2009 input", "translated to 2020 look", "2020 reference"]
    if confidence is not None:
        with rasterio.open(confidence) as c:
            conf = c.read(1, out_shape=shape[1:], resampling=Resampling.average, masked=True)
        panels.append(confidence_colours(conf.filled(np.nan)))
        labels.append("confidence (red: guessing, green: sure)")
    gap, label_h = 8, 22
    h, w = shape[1], shape[2]
    n = len(panels)
    canvas = Image.new("RGB", (n * w + (n - 1) * gap, h + label_h), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (panel, label) in enumerate(zip(panels, labels, strict=True)):
        rgb = np.moveaxis(np.asarray(panel, dtype=np.uint8), 0, -1)
        x = i * (w + gap)
        canvas.paste(Image.fromarray(rgb, "RGB"), (x, label_h))
        draw.text((x + 4, 5), label, fill="black")
    canvas.save(output)


def confidence_colours(conf: np.ndarray) -> np.ndarray:
    """Confidence ``(H, W)`` in [0, 1] -> RGB ``(3, H, W)`` uint8 through the QGIS style's
    ramp (:data:`geogan.qml.CONFIDENCE_RAMP`); NaN (nodata) is white."""
    from geogan.qml import CONFIDENCE_RAMP

    stops = [v for v, _, _ in CONFIDENCE_RAMP]
    rgb = np.empty((3,) + conf.shape, np.uint8)
    for k in range(3):
        channel = [int(c.lstrip("#")[2 * k:2 * k + 2], 16) for _, c, _ in CONFIDENCE_RAMP]
        rgb[k] = np.rint(np.interp(np.nan_to_num(conf, nan=0.0), stops, channel))
    rgb[:, np.isnan(conf)] = 255
    return rgb
