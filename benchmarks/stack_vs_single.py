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

After the table, the RMSE of each candidate where the land changed between the older image
and 2020 (their NDVI, red band 1 and NIR band 4, differ by 0.2 or more: about half the
pixels of the sample, whose crops differ between the two Augusts) and where it did not,
on the eastern half, on the 2020 grid.

Limits: one seed and a short budget give noisy numbers; a stacked input has more input
channels, so each step costs a little more and fewer steps fit in the budget.

Example::

    OMP_NUM_THREADS=1 nice python benchmarks/stack_vs_single.py --source 2014.tif \\
        --budget-seconds 120
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import (  # noqa: E402 - the benchmarks folder is on the path now
    ROOT,
    SCORE_BANDS,
    Halves,
    check_raster,
    device_line,
    harness_parser,
    print_table,
    run_main,
    train_and_score,
    west_east,
    write_rows,
)


def _args(argv: list[str] | None) -> argparse.Namespace:
    def inputs(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--stack", type=Path,
                            default=ROOT / "geogan" / "sample_data" / "naip_2009.tif")

    def models(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--generator", default="unet_128")

    return harness_parser(__doc__, "candidate", inputs, models).parse_args(argv)


def _candidate(name: str, stack: tuple[Path, ...], args: argparse.Namespace,
               halves: Halves) -> dict[str, Any]:
    from geogan.demo import NIR_BAND, RED_BAND
    from geogan.evaluate import EvaluateConfig
    from geogan.samplers import WindowConfig
    from geogan.translate import TranslateConfig

    base: dict[str, Any] = {
        "a": args.source, "b": args.reference, "model": "pix2pix",
        "generator": args.generator, "batch_size": args.batch_size, "crop": args.crop,
        "ngf": args.ngf, "ndf": args.ndf, "name_a": name, "name_b": "2020",
        "device": args.device, "seed": args.seed,
        "windows": WindowConfig(aoi=halves.west, max_nodata=0.01, min_std=1.0, a_stack=stack)}
    stem = name.replace("+", "_")
    return train_and_score(
        halves, name, base, halves.work / "runs" / stem, halves.work / f"{stem}.tif",
        TranslateConfig(device=args.device, stack=stack or None),
        EvaluateConfig(bands=SCORE_BANDS, aoi=halves.east, red=RED_BAND, nir=NIR_BAND),
        args.budget_seconds, args.probe_steps)[0]


#: |NDVI 2020 - NDVI of the older image| at or above this: the land changed there.
CHANGE_NDVI = 0.2


def rmse_by_change(prediction: Path, reference: Path, older: Path, east: Path
                   ) -> tuple[float, float, float]:
    """(RMSE where the land did not change, RMSE where it changed, the changed share) of
    ``prediction`` against ``reference`` over bands 1-4 of the eastern half, on the
    reference's grid (the prediction and ``older`` read onto it bilinearly). Changed:
    the NDVI (red band 1, NIR band 4) of ``older`` and of the reference differ by
    :data:`CHANGE_NDVI` or more. Pixels where any raster has no data are left out."""
    import geopandas as gpd
    import numpy as np
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.features import geometry_mask
    from rasterio.vrt import WarpedVRT

    with rasterio.open(reference) as ref:
        truth = ref.read(list(SCORE_BANDS)).astype(np.float64)
        valid = (ref.read_masks(list(SCORE_BANDS)) > 0).all(axis=0)
        shapes = gpd.read_file(east).to_crs(ref.crs).geometry
        valid &= ~geometry_mask(shapes, ref.shape, ref.transform)
        grid = {"crs": ref.crs, "transform": ref.transform, "width": ref.width,
                "height": ref.height, "resampling": Resampling.bilinear}
        onto = []
        for path in (prediction, older):
            with rasterio.open(path) as src, WarpedVRT(src, **grid) as vrt:
                onto.append(vrt.read(list(SCORE_BANDS)).astype(np.float64))
                valid &= (vrt.read_masks(list(SCORE_BANDS)) > 0).all(axis=0)
    pred, old = onto

    def ndvi(x: np.ndarray) -> np.ndarray:
        return (x[3] - x[0]) / np.maximum(x[3] + x[0], 1.0)

    changed = np.abs(ndvi(truth) - ndvi(old)) >= CHANGE_NDVI
    sq = ((pred - truth) ** 2).mean(axis=0)
    same, moved = valid & ~changed, valid & changed
    return (float(np.sqrt(sq[same].mean())), float(np.sqrt(sq[moved].mean())),
            float(moved.sum() / max(valid.sum(), 1)))


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = _args(argv)
    check_raster(args.stack, "--stack", "an earlier image of the same place, such as the "
                 "bundled naip_2009.tif")
    import torch

    torch.set_num_threads(args.threads)
    with west_east(args.source, args.reference, args.work, "geogan_stack_",
                   args.crop) as halves:
        rows = [_candidate("2014", (), args, halves),
                _candidate("2014+2009", (args.stack,), args, halves)]
        device = device_line(args.device)
        print(f"pix2pix, one input vs a stack: {args.budget_seconds:g} s of training each, NAIP "
              f"2014 (+2009) -> 2020, trained on the western half, scored on the eastern half "
              f"({device})")
        print_table(rows, 12)
        for row in rows:
            stem = row["candidate"].replace("+", "_")
            row["rmse_unchanged"], row["rmse_changed"], share = rmse_by_change(
                halves.work / f"{stem}.tif", args.reference, args.stack, halves.east)
        print(f"RMSE by land change 2009 -> 2020 on the eastern half (|NDVI difference| >= "
              f"{CHANGE_NDVI:g}: changed, {share:.0%} of the pixels):")
        for row in rows:
            print(f"{row['candidate']:<12} unchanged {row['rmse_unchanged']:7.2f}   changed "
                  f"{row['rmse_changed']:7.2f}")
        write_rows(args.json, args.budget_seconds, device, rows)
    return rows


if __name__ == "__main__":
    run_main(main)
