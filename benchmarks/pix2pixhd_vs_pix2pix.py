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

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import (  # noqa: E402 - the benchmarks folder is on the path now
    SCORE_BANDS,
    device_line,
    harness_parser,
    print_table,
    run_main,
    score_row,
    train_and_score,
    west_east,
    write_rows,
)


def _models(parser: Any) -> None:
    parser.add_argument("--pix2pix-generator", default="unet_128")
    parser.add_argument("--num-d", type=int, default=3)
    parser.add_argument("--vgg-weights", type=Path, default=None)
    parser.add_argument("--models", default="pix2pix,pix2pixhd")


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = harness_parser(__doc__, "model", models=_models).parse_args(argv)

    import torch

    from geogan.demo import NIR_BAND, RED_BAND
    from geogan.evaluate import EvaluateConfig, evaluate
    from geogan.samplers import WindowConfig
    from geogan.translate import TranslateConfig

    torch.set_num_threads(args.threads)
    source, reference = args.source, args.reference
    with west_east(source, reference, args.work, "geogan_hd_", args.crop) as halves:
        eval_cfg = EvaluateConfig(bands=SCORE_BANDS, aoi=halves.east,
                                  baseline="histogram-match", source=source, red=RED_BAND,
                                  nir=NIR_BAND)
        rows: list[dict[str, Any]] = []
        baseline: dict[str, Any] | None = None
        for model in args.models.split(","):
            base: dict[str, Any] = {
                "a": source, "b": reference, "model": model, "batch_size": args.batch_size,
                "crop": args.crop, "ngf": args.ngf, "ndf": args.ndf, "name_a": "2014",
                "name_b": "2020", "device": args.device, "seed": args.seed,
                "windows": WindowConfig(aoi=halves.west, max_nodata=0.01, min_std=1.0)}
            if model == "pix2pix":
                base["generator"] = args.pix2pix_generator
            else:
                base.update(num_d=args.num_d, vgg_weights=args.vgg_weights)
            row, report = train_and_score(
                halves, model, base, halves.work / "runs" / model,
                halves.work / f"{model}.tif", TranslateConfig(device=args.device), eval_cfg,
                args.budget_seconds, args.probe_steps)
            rows.append(row)
            if baseline is None:
                baseline = score_row("histogram matching", report.scores[1], detail=None)
        none = evaluate(source, reference, EvaluateConfig(
            bands=SCORE_BANDS, aoi=halves.east, red=RED_BAND, nir=NIR_BAND)).scores[0]
        if baseline is not None:
            rows.append(baseline)
        rows.append(score_row("untranslated 2014", none, detail=halves.detail(source)))

        device = device_line(args.device)
        print(f"pix2pixHD vs pix2pix: {args.budget_seconds:g} s of training each, NAIP 2014 -> "
              f"2020, trained on the western half, scored on the eastern half ({device})")
        print(f"settings: {args.crop} px windows, batch {args.batch_size}, ngf {args.ngf}, ndf "
              f"{args.ndf}, pix2pix {args.pix2pix_generator}, pix2pixhd num_d {args.num_d}, "
              f"VGG {'on' if args.vgg_weights else 'off'}, seed {args.seed}")
        print_table(rows, 20)
        write_rows(args.json, args.budget_seconds, device, rows)
    return rows


if __name__ == "__main__":
    run_main(main)
