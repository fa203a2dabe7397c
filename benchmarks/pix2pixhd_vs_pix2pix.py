"""pix2pixHD against pix2pix at the same CPU training time, on a real paired task.

The task: NAIP 2014 -> NAIP 2020 over the same North Dakota quarter-quad (two flights
six years apart; the 2014 orthophoto, ``m_4709963_se_14_1_20140720.tif`` of the public
``opengeos/data`` repository, is not bundled with geogan: pass it as
``--source``; the 2020 one is ``geogan/sample_data/naip_2020.tif``). Both models
train on random windows of the western half (B read over A's windows, as ``geogan train
--model pix2pix --a 2014.tif --b 2020.tif`` does; windows stop one crop short of the
middle, as ``geogan demo``), each for the same CPU-time budget of its training loop
(``--budget-seconds``; the learning-rate schedule spans the steps a short untimed probe
predicts), translate the whole 2014 orthophoto with the default translate settings
(``--norm global``), and are scored on the held-out eastern half against 2020 by
:func:`geogan.evaluate.evaluate` (what ``geogan evaluate`` runs), beside per-band
histogram matching and the untranslated 2014 image.

Columns: steps and img/s of the training loop; RMSE, PSNR and SSIM over bands 1-4; SAM,
the mean spectral angle in degrees; detail, the mean absolute difference of adjacent
pixels divided by that of the 2020 photo (below 1: blurrier than a real photo).

Defaults (CPU-sized): 128 px windows, batch 4, ngf 32 and ndf 32 for both; pix2pix with
its U-Net for 128 px (``unet_128``), pix2pixHD with its own generator (G1 with ngf 32, G2
with 16) and 3 discriminator scales, no VGG loss unless ``--vgg-weights`` is given.

Limits: one seed and a short budget give noisy numbers; the flights differ for real
(crops, water, haze), so no model reaches RMSE 0; the budget counts only the training
loop.

Example::

    OMP_NUM_THREADS=1 nice python benchmarks/pix2pixhd_vs_pix2pix.py --budget-seconds 120
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
SCORE_BANDS = (1, 2, 3, 4)


def _row(name: str, s: Any, extra: dict[str, Any]) -> dict[str, Any]:
    return {"candidate": name, "rmse": s.rmse, "psnr": s.psnr, "ssim": s.ssim,
            "sam": getattr(s, "sam", None), **extra}


def _fmt(value: Any, width: int, digits: int) -> str:
    return f"{'':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-seconds", type=float, default=240.0,
                        help="training-loop seconds per model")
    parser.add_argument("--source", type=Path, required=True,
                        help="the NAIP 2014 orthophoto m_4709963_se_14_1_20140720.tif "
                             "(opengeos/data; not bundled)")
    parser.add_argument("--reference", type=Path,
                        default=ROOT / "geogan" / "sample_data" / "naip_2020.tif")
    parser.add_argument("--work", type=Path, default=None,
                        help="new folder for runs and translations [default: a temporary one]")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--ngf", type=int, default=32)
    parser.add_argument("--ndf", type=int, default=32)
    parser.add_argument("--pix2pix-generator", default="unet_128")
    parser.add_argument("--num-d", type=int, default=3)
    parser.add_argument("--vgg-weights", type=Path, default=None)
    parser.add_argument("--models", default="pix2pix,pix2pixhd")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probe-steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)

    import torch
    from quality import _loop_rate, _train_for

    from geogan.demo import NIR_BAND, RED_BAND, _halves, spectral_row, texture_energies
    from geogan.evaluate import EvaluateConfig, evaluate
    from geogan.samplers import WindowConfig
    from geogan.translate import TranslateConfig, translate_files

    torch.set_num_threads(args.threads)
    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="geogan_hd_")
        work = Path(tmp.name)
    else:
        work = args.work
        work.mkdir(parents=True, exist_ok=True)
    source, reference = args.source, args.reference
    west, east = _halves(source, work / "aoi", margin=args.crop)
    ref_detail, _ = texture_energies(reference, east)
    eval_cfg = EvaluateConfig(bands=SCORE_BANDS, aoi=east, baseline="histogram-match",
                              source=source, red=RED_BAND, nir=NIR_BAND)
    rows: list[dict[str, Any]] = []
    baseline: dict[str, Any] | None = None
    for model in args.models.split(","):
        base: dict[str, Any] = {
            "a": source, "b": reference, "model": model, "batch_size": args.batch_size,
            "crop": args.crop, "ngf": args.ngf, "ndf": args.ndf, "name_a": "2014",
            "name_b": "2020", "device": args.device, "seed": args.seed,
            "windows": WindowConfig(aoi=west, max_nodata=0.01, min_std=1.0)}
        if model == "pix2pix":
            base["generator"] = args.pix2pix_generator
        else:
            base.update(num_d=args.num_d, vgg_weights=args.vgg_weights)
        run = work / "runs" / model
        checkpoint = _train_for(args.budget_seconds, base, run, args.probe_steps)
        steps, loop_s, _ = _loop_rate(run, args.batch_size)
        out = work / f"{model}.tif"
        t0 = time.perf_counter()
        translate_files(checkpoint, [source], out, TranslateConfig(device=args.device))
        translate_s = time.perf_counter() - t0
        report = evaluate(out, reference, eval_cfg)
        detail = texture_energies(out, east)[0] / ref_detail
        rows.append(_row(model, report.scores[0], {
            **spectral_row(report.scores[0]), "steps": steps,
            "img_s": steps * args.batch_size / loop_s, "translate_s": translate_s,
            "detail": detail}))
        if baseline is None:
            baseline = _row("histogram matching", report.scores[1],
                            {**spectral_row(report.scores[1]), "detail": None})
    none = evaluate(source, reference, EvaluateConfig(
        bands=SCORE_BANDS, aoi=east, red=RED_BAND, nir=NIR_BAND)).scores[0]
    if baseline is not None:
        rows.append(baseline)
    rows.append(_row("untranslated 2014", none, {
        **spectral_row(none), "detail": texture_energies(source, east)[0] / ref_detail}))

    device = f"{args.device}: {os.cpu_count()} cores, {torch.get_num_threads()} torch thread(s)"
    print(f"pix2pixHD vs pix2pix: {args.budget_seconds:g} s of training each, NAIP 2014 -> "
          f"2020, trained on the western half, scored on the eastern half ({device})")
    print(f"settings: {args.crop} px windows, batch {args.batch_size}, ngf {args.ngf}, ndf "
          f"{args.ndf}, pix2pix {args.pix2pix_generator}, pix2pixhd num_d {args.num_d}, "
          f"VGG {'on' if args.vgg_weights else 'off'}, seed {args.seed}")
    header = (f"{'candidate':<20} {'steps':>6} {'img/s':>6} {'RMSE':>7} {'PSNR dB':>8} "
              f"{'SSIM':>6} {'SAM deg':>7} {'detail':>7}")
    print(header)
    print("-" * len(header))
    for r in rows:
        steps = f"{r['steps']:>6d}" if "steps" in r else f"{'':>6}"
        print(f"{r['candidate']:<20} {steps} {_fmt(r.get('img_s'), 6, 2)} "
              f"{r['rmse']:>7.2f} {r['psnr']:>8.2f} {r['ssim']:>6.3f} "
              f"{_fmt(r['sam'], 7, 2)} "
              + (f"{'-':>7}" if r["detail"] is None else f"{r['detail']:>6.2f}x"))
    if args.json is not None:
        args.json.write_text(json.dumps({"budget_s": args.budget_seconds, "device": device,
                                         "rows": rows}, indent=2, default=str) + "\n")
    if tmp is not None:
        tmp.cleanup()
    return rows


if __name__ == "__main__":
    from geogan.errors import GeoganError

    try:
        main()
    except GeoganError as exc:
        sys.exit(f"error: {exc}")
