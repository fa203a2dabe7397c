"""pix2pix on one input raster against the same input stacked with an older one, at equal CPU
training time: NAIP 2014 alone -> 2020 vs NAIP 2014 + 2009 (``--a-stack``) -> 2020.

The 2014 orthophoto (``m_4709963_se_14_1_20140720.tif`` of the public ``opengeos/data``
repository, not bundled: pass it as ``--source``), the 2009 one (``--stack``, default
``geogan/sample_data/naip_2009.tif``, on a grid 2 m off the 2014 one, so it is
resampled onto it) and the 2020 target (``geogan/sample_data/naip_2020.tif``) cover the
same North Dakota quarter-quad. Both candidates train pix2pix on random windows of the
western half for the same CPU-time budget of the training loop (``--budget-seconds``),
translate the whole 2014 image (the stacked one with ``translate --stack``) and are scored
on the held-out eastern half against 2020 by :func:`geogan.evaluate.evaluate`.

Columns as in ``pix2pixhd_vs_pix2pix.py``: steps and img/s of the loop; RMSE, PSNR, SSIM
over bands 1-4; SAM in degrees; detail (mean adjacent-pixel difference over 2020's).

Limits: one seed and a short budget give noisy numbers; a stacked input has more input
channels, so each step costs a little more and fewer steps fit in the budget.

Example::

    OMP_NUM_THREADS=1 nice python benchmarks/stack_vs_single.py --source 2014.tif \\
        --budget-seconds 120
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


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-seconds", type=float, default=240.0,
                        help="training-loop seconds per candidate")
    parser.add_argument("--source", type=Path, required=True,
                        help="the NAIP 2014 orthophoto m_4709963_se_14_1_20140720.tif "
                             "(opengeos/data; not bundled)")
    parser.add_argument("--stack", type=Path,
                        default=ROOT / "geogan" / "sample_data" / "naip_2009.tif")
    parser.add_argument("--reference", type=Path,
                        default=ROOT / "geogan" / "sample_data" / "naip_2020.tif")
    parser.add_argument("--work", type=Path, default=None,
                        help="new folder for runs and translations [default: a temporary one]")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--ngf", type=int, default=32)
    parser.add_argument("--ndf", type=int, default=32)
    parser.add_argument("--generator", default="unet_128")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probe-steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    return parser.parse_args(argv)


def _candidate(name: str, stack: tuple[Path, ...], args: argparse.Namespace, work: Path,
               west: Path, east: Path, ref_detail: float) -> dict[str, Any]:
    from quality import _loop_rate, _train_for

    from geogan.demo import NIR_BAND, RED_BAND, spectral_row, texture_energies
    from geogan.evaluate import EvaluateConfig, evaluate
    from geogan.samplers import WindowConfig
    from geogan.translate import TranslateConfig, translate_files

    base: dict[str, Any] = {
        "a": args.source, "b": args.reference, "model": "pix2pix",
        "generator": args.generator, "batch_size": args.batch_size, "crop": args.crop,
        "ngf": args.ngf, "ndf": args.ndf, "name_a": name, "name_b": "2020",
        "device": args.device, "seed": args.seed,
        "windows": WindowConfig(aoi=west, max_nodata=0.01, min_std=1.0, a_stack=stack)}
    run = work / "runs" / name.replace("+", "_")
    checkpoint = _train_for(args.budget_seconds, base, run, args.probe_steps)
    steps, loop_s, _ = _loop_rate(run, args.batch_size)
    out = work / f"{name.replace('+', '_')}.tif"
    t0 = time.perf_counter()
    translate_files(checkpoint, [args.source], out,
                    TranslateConfig(device=args.device, stack=stack or None))
    translate_s = time.perf_counter() - t0
    s = evaluate(out, args.reference, EvaluateConfig(
        bands=SCORE_BANDS, aoi=east, red=RED_BAND, nir=NIR_BAND)).scores[0]
    return {"candidate": name, "rmse": s.rmse, "psnr": s.psnr, "ssim": s.ssim,
            "sam": getattr(s, "sam", None), **spectral_row(s), "steps": steps,
            "img_s": steps * args.batch_size / loop_s, "translate_s": translate_s,
            "detail": texture_energies(out, east)[0] / ref_detail}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = _args(argv)
    import torch

    from geogan.demo import _halves, texture_energies

    torch.set_num_threads(args.threads)
    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="geogan_stack_")
        work = Path(tmp.name)
    else:
        work = args.work
        work.mkdir(parents=True, exist_ok=True)
    west, east = _halves(args.source, work / "aoi", margin=args.crop)
    ref_detail, _ = texture_energies(args.reference, east)
    rows = [_candidate("2014", (), args, work, west, east, ref_detail),
            _candidate("2014+2009", (args.stack,), args, work, west, east, ref_detail)]
    device = f"{args.device}: {os.cpu_count()} cores, {torch.get_num_threads()} torch thread(s)"
    print(f"pix2pix, one input vs a stack: {args.budget_seconds:g} s of training each, NAIP "
          f"2014 (+2009) -> 2020, trained on the western half, scored on the eastern half "
          f"({device})")
    header = (f"{'candidate':<12} {'steps':>6} {'img/s':>6} {'RMSE':>7} {'PSNR dB':>8} "
              f"{'SSIM':>6} {'SAM deg':>7} {'detail':>7}")
    print(header)
    print("-" * len(header))
    for r in rows:
        sam = f"{'':>7}" if r["sam"] is None else f"{r['sam']:>7.2f}"
        print(f"{r['candidate']:<12} {r['steps']:>6d} {r['img_s']:>6.2f} {r['rmse']:>7.2f} "
              f"{r['psnr']:>8.2f} {r['ssim']:>6.3f} {sam} {r['detail']:>6.2f}x")
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
