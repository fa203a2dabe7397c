"""Translation quality of the models at the same training-time budget, printed as one table.

Each model (default: CycleGAN with transposed-convolution upsampling, CycleGAN with
resize-convolution upsampling, CUT with resize-convolution upsampling) trains for the
same CPU-time budget on the western half of the bundled NAIP orthophotos (2009 ->
2020, chips that stay 128 px clear of the middle, as ``geogan demo``), translates the
whole 2009 orthophoto with the default translate settings, and is scored on the held-out
eastern half against the 2020 orthophoto, beside per-band histogram matching and the
untranslated 2009 image.

Columns:

- steps, img/s: optimiser steps done within the budget and training images per second
  (steps x batch / time in the training loop, from the run's losses.csv).
- RMSE, PSNR, SSIM: :func:`geogan.evaluate.evaluate` on bands 1-4 of the eastern half
  (the 2020 reference resampled onto the 2009 grid, bilinear), as ``geogan demo`` reports.
- SAM, ERGAS, NDVI: spectral fidelity on the same pixels (:mod:`geogan.evaluate.spectral`):
  the mean spectral angle in degrees, ERGAS ``100 * sqrt(mean_b (RMSE_b / mean_ref_b)^2)``
  (resolution ratio 1) and the RMSE of NDVI ``(NIR - red) / (NIR + red)`` from red band 1
  and NIR band 4, given as the demo gives them (the NAIP orthophotos' colour
  interpretation is gray/undefined); the JSON rows add per-band bias, the NDVI bias and
  the share of pixels whose NDVI differs by more than 0.1.
- checker: the checker-energy ratio. The 2x2 checker energy of a raster is the mean, over
  the non-overlapping 2x2 pixel blocks of its eastern half whose four pixels are valid and
  over the R, G, B bands, of ``|x[2i,2j] - x[2i+1,2j] - x[2i,2j+1] + x[2i+1,2j+1]| / 4``
  (in 8-bit units, on the raster's own pixel grid): the amplitude of the finest
  checkerboard pattern, which transposed convolutions paint. The ratio divides it by the
  same energy of the real 2020 orthophoto, so 1.0 is "as crisp as a real photo" and the
  pattern of a deconvolution artefact pushes it above. Histogram matching maps each pixel
  through a tone curve and adds no spatial pattern; its column is left empty.
- detail: the detail ratio, the mean absolute difference between horizontally or
  vertically adjacent valid pixels (R, G, B, same window), divided by that of the 2020
  orthophoto (:func:`geogan.metrics.detail_energy`). A blurred translation falls well
  below 1; the untranslated 2009 photo, a real image of a hazier flight, is near it.

Limits: the two dates differ for real (fields, water, haze), so no model can reach
RMSE 0 or SSIM 1 and the untranslated image is a strong baseline on SSIM; one seed and a
short budget give noisy numbers (train longer and repeat seeds before concluding); the
budget counts only the training loop, not tiling, translation or evaluation.

Examples::

    OMP_NUM_THREADS=1 python benchmarks/quality.py --budget-s 120 --threads 1     # quick
    python benchmarks/quality.py --budget-s 600 --models cyclegan:deconv,cut:resize,fastcut:resize
    python benchmarks/quality.py --device cuda --generator resnet_9blocks --ngf 64 --ndf 64 \\
        --chip 256 --batch-size 8 --budget-s 300                                  # GPU
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: Bands scored (as geogan demo); the texture figures are those of R, G, B, as the demo's.
SCORE_BANDS = (1, 2, 3, 4)
DEFAULT_MODELS = "cyclegan:deconv,cyclegan:resize,cut:resize"


def _fig(value: float | None, width: int, digits: int, empty: str = "-",
         suffix: str = "") -> str:
    """``value`` right-aligned in ``width`` characters with ``digits`` decimals and
    ``suffix`` after; ``empty`` in their place when it is None."""
    if value is None:
        return f"{empty:>{width + len(suffix)}}"
    return f"{value:>{width}.{digits}f}{suffix}"


def _loop_rate(run: Path, batch_size: int) -> tuple[int, float, float]:
    """(steps, seconds in the loop, seconds per step after the first) from losses.csv."""
    with open(run / "losses.csv", newline="") as fh:
        rows = [{k: float(v) for k, v in r.items() if v} for r in csv.DictReader(fh)]
    steps, elapsed = int(rows[-1]["step"]), rows[-1]["elapsed_s"]
    if len(rows) > 1:
        per_step = (rows[-1]["elapsed_s"] - rows[0]["elapsed_s"]) / (
            rows[-1]["step"] - rows[0]["step"])
    else:
        per_step = elapsed / max(steps, 1)
    return steps, elapsed, per_step


def _train_for(budget_s: float, base: dict[str, Any], run: Path, probe_steps: int) -> Path:
    """Train for about ``budget_s`` seconds of this process's CPU time in the training loop
    (the same budget for every candidate even when other programs share the machine); the
    LR schedule spans the steps a short probe predicts."""
    from geogan.errors import Cancelled
    from geogan.train import TrainConfig, train

    probe = run.with_name(run.name + "_probe")
    ticks: list[tuple[float, float]] = []

    def tick(done: float, total: float, **info: Any) -> None:
        ticks.append((done, time.process_time()))

    train(TrainConfig(output=probe, max_steps=probe_steps, log_every=1,
                      preview_every=probe_steps, save_every=probe_steps, **base), progress=tick)
    if len(ticks) > 1 and ticks[-1][0] > ticks[0][0]:
        per_step = (ticks[-1][1] - ticks[0][1]) / (ticks[-1][0] - ticks[0][0])
    else:
        per_step = _loop_rate(probe, base["batch_size"])[2]
    steps = max(1, int(budget_s / max(per_step, 1e-6)))
    started: list[float] = []

    def over_budget() -> bool:  # asked after every step on the CPU
        now = time.process_time()
        if not started:
            started.append(now - per_step)  # the first step is done
            return False
        return now - started[0] > budget_s

    config = TrainConfig(output=run, max_steps=steps, log_every=max(1, steps // 20),
                         preview_every=steps, save_every=steps, **base)
    try:
        return train(config, cancel=over_budget)
    except Cancelled:  # the budget ran out before the estimate: a checkpoint was saved
        return run / "model.safetensors"


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=600.0,
                        help="training-loop seconds per model")
    parser.add_argument("--models", default=DEFAULT_MODELS,
                        help="comma-separated MODEL:UPSAMPLE (models: cyclegan, cut, fastcut)")
    parser.add_argument("--data", type=Path, default=ROOT / "geogan" / "sample_data")
    parser.add_argument("--work", type=Path, default=None,
                        help="new folder for chips, runs and translations "
                             "[default: a temporary one]")
    parser.add_argument("--chip", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--generator", default="resnet_6blocks")
    parser.add_argument("--ngf", type=int, default=16)
    parser.add_argument("--ndf", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probe-steps", type=int, default=4,
                        help="steps of the untimed run that estimates the step time")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    if not args.models.strip():
        parser.error("--models is empty")

    import torch

    from geogan.demo import (
        NIR_BAND,
        RED_BAND,
        _halves,  # the demo's split, so the numbers compare with it
        spectral_row,
        texture_energies,
    )
    from geogan.evaluate import EvaluateConfig, evaluate
    from geogan.tiling import TileConfig, tile_rasters
    from geogan.translate import TranslateConfig, translate_files

    if args.threads:
        torch.set_num_threads(args.threads)
    source, reference = args.data / "naip_2009.tif", args.data / "naip_2020.tif"
    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="geogan_quality_")
        work = Path(tmp.name)
    else:
        work = args.work
        work.mkdir(parents=True, exist_ok=True)
    west, east = _halves(source, work / "aoi", margin=args.chip)
    tile_cfg = TileConfig(size=args.chip, overlap=args.chip // 2, aoi=west, max_nodata=0.01,
                          min_std=1.0)
    for raster, domain in ((source, "a"), (reference, "b")):
        tile_rasters([raster], work / "chips" / domain, tile_cfg)

    ref_detail, ref_energy = texture_energies(reference, east)

    def texture(path: Path) -> dict[str, float]:
        detail, checker = texture_energies(path, east)
        return {"checker": checker / ref_energy, "detail": detail / ref_detail}
    eval_cfg = EvaluateConfig(bands=SCORE_BANDS, aoi=east, baseline="histogram-match",
                              source=source, red=RED_BAND, nir=NIR_BAND)
    rows: list[dict[str, Any]] = []
    for spec in args.models.split(","):
        model, _, upsample = spec.strip().partition(":")
        upsample = upsample or "deconv"
        name = f"{model} {upsample}"
        base = {"a": work / "chips" / "a", "b": work / "chips" / "b", "model": model,
                "upsample": upsample, "batch_size": args.batch_size, "crop": args.chip,
                "generator": args.generator, "ngf": args.ngf, "ndf": args.ndf,
                "name_a": "2009", "name_b": "2020", "device": args.device,
                "precision": args.precision, "seed": args.seed}
        run = work / "runs" / f"{model}_{upsample}"
        checkpoint = _train_for(args.budget_s, base, run, args.probe_steps)
        steps, loop_s, _ = _loop_rate(run, args.batch_size)
        out = work / f"{model}_{upsample}.tif"
        t0 = time.perf_counter()
        translate_files(checkpoint, [source], out, TranslateConfig(device=args.device))
        translate_s = time.perf_counter() - t0
        report = evaluate(out, reference, eval_cfg)
        s = report.scores[0]
        rows.append({"candidate": name, "steps": steps,
                     "img_s": steps * args.batch_size / loop_s, "translate_s": translate_s,
                     "rmse": s.rmse, "psnr": s.psnr, "ssim": s.ssim, **spectral_row(s),
                     **texture(out)})
        if len(rows) == 1:
            h = report.scores[1]
            baseline = {"candidate": "histogram matching", "rmse": h.rmse, "psnr": h.psnr,
                        "ssim": h.ssim, **spectral_row(h), "checker": None, "detail": None}
    none = evaluate(source, reference, EvaluateConfig(
        bands=SCORE_BANDS, aoi=east, red=RED_BAND, nir=NIR_BAND)).scores[0]
    rows.append(baseline)
    rows.append({"candidate": "untranslated 2009", "rmse": none.rmse, "psnr": none.psnr,
                 "ssim": none.ssim, **spectral_row(none), **texture(source)})

    device = "cuda: " + torch.cuda.get_device_name() if (
        args.device != "cpu" and torch.cuda.is_available()) else (
        f"cpu: {os.cpu_count()} cores, {torch.get_num_threads()} torch thread(s)")
    print(f"geogan quality benchmark: {args.budget_s:g} s of training per model on "
          f"{platform.machine()} {device}")
    print(f"settings: {args.generator}, ngf {args.ngf}, ndf {args.ndf}, {args.chip} px chips, "
          f"batch {args.batch_size}, seed {args.seed}; scored on the eastern half vs 2020 "
          f"(bands 1-4; NDVI from red band {RED_BAND}, NIR band {NIR_BAND}, given), 2020 "
          f"checker energy {ref_energy:.3f}")
    header = (f"{'candidate':<20} {'steps':>6} {'img/s':>7} {'RMSE':>7} {'PSNR dB':>8} "
              f"{'SSIM':>6} {'SAM deg':>7} {'ERGAS':>6} {'NDVI':>6} {'checker':>8} "
              f"{'detail':>7}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['candidate']:<20} {_fig(r.get('steps'), 6, 0, '')} "
              f"{_fig(r.get('img_s'), 7, 2, '')} {r['rmse']:>7.2f} {r['psnr']:>8.2f} "
              f"{r['ssim']:>6.3f} {_fig(r['sam'], 7, 2)} {_fig(r['ergas'], 6, 1)} "
              f"{_fig(r['ndvi_rmse'], 6, 3)} {_fig(r['checker'], 7, 2, '-', 'x')} "
              f"{_fig(r['detail'], 6, 2, '-', 'x')}")
    if args.json is not None:
        args.json.write_text(json.dumps({"budget_s": args.budget_s, "device": device,
                                         "reference_checker_energy": ref_energy,
                                         "rows": rows}, indent=2) + "\n")
    if tmp is not None:
        tmp.cleanup()
    return rows


if __name__ == "__main__":
    from _harness import run_main

    run_main(main)
