"""Loss curves of training from rasters against training from chips of the same area.

Both runs use the demo's settings (CycleGAN, ResNet-6 ngf 16, PatchGAN ndf 32, 128 px,
batch 4, seed 0) on the western half of the sample NAIP orthophotos:

* chips: ``geogan tile`` of each date (128 px, overlap 64, ``--aoi`` the western half
  ending 128 px short of the middle, as the pretrained model's recipe, ``--max-nodata
  0.01 --min-std 1``), then ``geogan train`` on the two chip folders;
* rasters: ``geogan train --a naip_2009.tif --b naip_2020.tif --aoi west`` (the
  western half up to the middle; windows lie wholly inside it) with the same filters.

Prints, per ``--every`` steps, the mean generator total and discriminator losses of
both runs, and each run's seconds. Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/raster_vs_chips.py            # 150 steps
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "geogan" / "sample_data"


def _train(a: object, b: object, out: Path, steps: int, every: int, **extra: object) -> float:
    from geogan.train import TrainConfig, train

    cfg = TrainConfig(a=a, b=b, output=out, max_steps=steps, batch_size=4, crop=128,  # type: ignore[arg-type]
                      generator="resnet_6blocks", ngf=16, ndf=32, seed=0, log_every=every,
                      preview_every=steps, save_every=steps, device="cpu", **extra)
    start = time.perf_counter()
    train(cfg)
    return time.perf_counter() - start


def _rows(run: Path) -> list[dict[str, float]]:
    with open(run / "losses.csv", newline="") as fh:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(fh)]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--every", type=int, default=25, help="steps per printed mean")
    args = parser.parse_args(argv)

    import torch

    from geogan.demo import _halves
    from geogan.samplers import WindowConfig
    from geogan.tiling import TileConfig, tile_rasters

    if torch.get_num_threads() > 2:
        torch.set_num_threads(2)
    src, ref = DATA / "naip_2009.tif", DATA / "naip_2020.tif"
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        west_chips, _ = _halves(src, tmp / "aoi_chips", margin=128)
        west, _ = _halves(src, tmp / "aoi_rasters", margin=0)
        tile_cfg = TileConfig(size=128, overlap=64, aoi=west_chips, max_nodata=0.01,
                              min_std=1.0)
        counts = {}
        for raster, name in ((src, "a"), (ref, "b")):
            counts[name] = tile_rasters([raster], tmp / "chips" / name, tile_cfg).chips
        t_chips = _train(tmp / "chips" / "a", tmp / "chips" / "b", tmp / "run_chips",
                         args.steps, args.every)
        t_rasters = _train(src, ref, tmp / "run_rasters", args.steps, args.every,
                           windows=WindowConfig(aoi=west, max_nodata=0.01, min_std=1.0))
        chips, rasters = _rows(tmp / "run_chips"), _rows(tmp / "run_rasters")
    keys = ("G_total", "D_A", "D_B", "cycle_A", "cycle_B")
    print(f"{'steps':>9} | " + " | ".join(f"{k:>8} chips/rasters" for k in keys))
    for rc, rr in zip(chips, rasters, strict=True):
        lo = int(rc["step"]) - args.every + 1
        print(f"{lo:>4}-{int(rc['step']):<4} | " + " | ".join(
            f"{rc[k]:>8.4f} / {rr[k]:<7.4f}" for k in keys))
    result = {"steps": args.steps, "every": args.every, "chips_per_domain": counts,
              "seconds": {"chips": round(t_chips, 1), "rasters": round(t_rasters, 1)},
              "torch_threads": torch.get_num_threads(),
              "chips": {k: [round(r[k], 4) for r in chips] for k in keys},
              "rasters": {k: [round(r[k], 4) for r in rasters] for k in keys}}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
