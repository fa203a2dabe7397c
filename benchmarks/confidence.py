"""Which confidence measure tells where the translation should not be trusted, measured.

On the bundled NAIP data with the shipped CycleGAN (2009 -> 2020), for every measure of
:mod:`geogan.confidence` (and a random order as the floor):

1. Out-of-distribution patches. Foreign content is pasted into the 2009 orthophoto:
   patches of the lidar DSM rendered as a grey image (2-98 % stretch), of the Landsat
   scene, the ground itself colour-inverted (255 - value), and uniform noise; square,
   32 to 128 px, at random places that do not overlap. The confidence of the whole pasted
   raster is computed as translation would (its own global statistics, default tile,
   overlap and blend), and the AUROC of *low* confidence for pasted against untouched
   valid pixels is printed per kind and overall (1.0: every pasted pixel is less
   confident than every untouched one; 0.5: no better than chance). A kind whose file is
   missing is skipped.
2. Real errors. The untouched 2009 orthophoto is translated with ``translate_raster``
   (default settings); on the held-out eastern half, the per-pixel RMSE (over the four
   bands, 8-bit units) against the 2020 orthophoto resampled onto the 2009 grid
   (bilinear) is printed for the most confident 10, 25, 50, 75 and 100 % of the valid
   pixels (risk-coverage), beside a random order.
3. Cost, in generator work: megapixels of forward passes of a plain translation (the
   statistics sample and the windows), of the measure alone (its passes over the windows,
   and for ``cycle`` the sample through both generators for b2a's statistics), their
   ``ratio``, and ``with``: (translation + measure) / translation when the measure reuses
   the translation's own pass, as ``translate --confidence`` does. Also in seconds for the
   default measure: best of ``--repeats`` interleaved runs of a plain ``translate_raster``
   and of the confidence alone (the translation's statistics given).

Example (13 minutes on a 2-core machine shared with other work; --repeats 1 saves two)::

    OMP_NUM_THREADS=1 nice python benchmarks/confidence.py --threads 1
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "geogan" / "sample_data"
COVERAGES = (0.10, 0.25, 0.50, 0.75, 1.00)
KINDS = ("dsm", "landsat", "inverted", "noise")


def auroc(scores_pos: np.ndarray, scores_neg: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counted half (Mann-Whitney)."""
    both = np.concatenate([scores_pos, scores_neg])
    _, inverse, counts = np.unique(both, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = (ends - (counts - 1) / 2.0)[inverse]  # average 1-based ranks
    n_p, n_n = len(scores_pos), len(scores_neg)
    return float((ranks[:n_p].sum() - n_p * (n_p + 1) / 2.0) / (n_p * n_n))


def risk_coverage(conf: np.ndarray, sq_err: np.ndarray) -> list[float]:
    """RMSE of the most confident fraction of pixels, for each of :data:`COVERAGES`."""
    order = np.argsort(-conf, kind="stable")
    cum = np.cumsum(sq_err[order])
    return [float(np.sqrt(cum[max(1, int(round(f * len(order)))) - 1]
                          / max(1, int(round(f * len(order)))))) for f in COVERAGES]


def _stretch(a: np.ndarray, valid: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(a[valid], (2, 98))
    return (np.clip((a - lo) / max(hi - lo, 1e-6), 0, 1) * 254 + 1).astype(np.uint8)


def load_sources(dsm: Path, landsat: Path) -> dict[str, np.ndarray | None]:
    """Foreign images ``(4, H, W)`` uint8 to cut patches from (None: file missing)."""
    import rasterio

    out: dict[str, np.ndarray | None] = {"dsm": None, "landsat": None}
    if dsm.is_file():
        with rasterio.open(dsm) as src:
            a = src.read(1).astype(np.float64)
            valid = src.read_masks(1) > 0
        grey = _stretch(a, valid)
        grey[~valid] = 1
        out["dsm"] = np.repeat(grey[None], 4, axis=0)
    if landsat.is_file():
        with rasterio.open(landsat) as src:
            out["landsat"] = np.maximum(src.read()[:4], 1).astype(np.uint8)
    return out


def paste(image: np.ndarray, valid: np.ndarray, sources: dict[str, np.ndarray | None],
          per_kind: int, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``image`` with patches pasted; the mask of each kind's pasted pixels."""
    _, h, w = image.shape
    out = image.copy()
    taken = np.zeros((h, w), bool)
    masks: dict[str, np.ndarray] = {}
    kinds = [k for k in KINDS if k not in sources or sources[k] is not None]
    for kind in kinds:
        mask = np.zeros((h, w), bool)
        placed, tries = 0, 0
        while placed < per_kind and tries < 1000:
            tries += 1
            s = int(rng.integers(32, 129))
            y, x = int(rng.integers(0, h - s)), int(rng.integers(0, w - s))
            if taken[max(0, y - 16):y + s + 16, max(0, x - 16):x + s + 16].any() \
                    or not valid[y:y + s, x:x + s].all():
                continue
            if kind == "inverted":
                patch = 255 - image[:, y:y + s, x:x + s]
            elif kind == "noise":
                patch = rng.integers(1, 256, (image.shape[0], s, s), dtype=np.uint8)
            else:
                src = sources[kind]
                assert src is not None
                sy = int(rng.integers(0, src.shape[1] - s + 1))
                sx = int(rng.integers(0, src.shape[2] - s + 1))
                patch = src[:, sy:sy + s, sx:sx + s]
            out[:, y:y + s, x:x + s] = patch
            mask[y:y + s, x:x + s] = True
            taken[y:y + s, x:x + s] = True
            placed += 1
        masks[kind] = mask
    return out, masks


def write_like(path: Path, array: np.ndarray, profile: dict[str, Any]) -> None:
    import rasterio

    with rasterio.open(path, "w", **{**profile, "count": array.shape[0]}) as dst:
        dst.write(array)


def confidences(ck: Path, raster_path: Path, args: argparse.Namespace,
                measures: list[str]) -> dict[str, np.ndarray]:
    """Each measure's confidence of ``raster_path``, its global statistics estimated first."""
    import rasterio

    from geogan import confidence as conf
    from geogan.checkpoint import load_generator
    from geogan.normstats import estimate_stats

    a2b, b2a = load_generator(ck, "a2b"), load_generator(ck, "b2a")
    with rasterio.open(raster_path) as src:
        raster = src.read()
        valid = src.dataset_mask() > 0
    stats = estimate_stats(a2b, [raster_path], "global", [list(range(1, raster.shape[0] + 1))],
                           device="cpu")
    out = {}
    for name in measures:
        models = conf.raster_models(a2b, b2a, raster, stats, name, valid)
        out[name] = conf.raster_confidence(models, raster, args.tile, args.overlap,
                                           measure=name, valid=valid)
    return out


def work_mpx(ck: Path, width: int, height: int, tile: int, overlap: int,
             measure: str) -> tuple[float, float, float]:
    """Generator work in megapixels of forward passes: ``(plain translation, the measure
    alone, translation + measure when the measure reuses the translation's output)``.

    A plain translation is the statistics sample (one pass) and the windows (one pass);
    the measure is :func:`geogan.confidence.passes` over the windows plus, for ``cycle``,
    the sample through both generators for b2a's statistics.
    """
    from geogan import confidence as conf
    from geogan.blend import AxisLayout
    from geogan.checkpoint import load_generator
    from geogan.normstats import plan_global_sample, probe

    gen = load_generator(ck, "a2b")
    info = probe(gen.module, gen.in_bands, "cpu")
    plan = plan_global_sample([(width, height)], info.bytes_per_px, 4, info.passes)
    sample = len(plan.windows) * plan.height * plan.width / 1e6
    windows = AxisLayout(width, tile, overlap).count * AxisLayout(height, tile, overlap).count
    one = windows * tile * tile / 1e6
    components = conf.measure_spec(measure)[0]
    alone = conf.passes(measure) * one + (2 * sample if "cycle" in components else 0.0)
    reuse = one if "feature" not in components else 0.0
    return sample + one, alone, sample + one + alone - reuse


def timed_cost(ck: Path, path: Path, args: argparse.Namespace, measure: str,
               tmp: Path) -> tuple[float, float]:
    """Best of ``args.repeats`` seconds, interleaved: a plain translation of ``path`` (its
    statistics included), and the measure's confidence given those statistics."""
    import rasterio

    from geogan import confidence as conf
    from geogan.checkpoint import load_generator
    from geogan.normstats import estimate_stats
    from geogan.translate import TranslateConfig, translate_raster

    a2b, b2a = load_generator(ck, "a2b"), load_generator(ck, "b2a")
    with rasterio.open(path) as src:
        raster, valid = src.read(), src.dataset_mask() > 0
    plain, alone = [], []
    for i in range(args.repeats):
        start = time.perf_counter()
        translate_raster(a2b, path, tmp / f"cost{i}.tif",
                         TranslateConfig(tile=args.tile, overlap=args.overlap))
        plain.append(time.perf_counter() - start)
        stats = estimate_stats(a2b, [path], "global", [list(range(1, raster.shape[0] + 1))],
                               device="cpu")
        start = time.perf_counter()
        models = conf.raster_models(a2b, b2a, raster, stats, measure, valid)
        conf.raster_confidence(models, raster, args.tile, args.overlap, measure=measure,
                               valid=valid)
        alone.append(time.perf_counter() - start)
    return min(plain), min(alone)


def main() -> None:
    from geogan import confidence as conf

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", type=Path,
                   default=SAMPLE / "pretrained" / "naip_2009_to_2020.safetensors")
    p.add_argument("--a", type=Path, default=SAMPLE / "naip_2009.tif")
    p.add_argument("--b", type=Path, default=SAMPLE / "naip_2020.tif")
    p.add_argument("--dsm", type=Path, default=SAMPLE / "dsm_float32.tif")
    p.add_argument("--landsat", type=Path, default=SAMPLE / "landsat_2020.tif")
    p.add_argument("--measures", default=",".join(conf.MEASURES))
    p.add_argument("--patches", type=int, default=6, help="patches per kind")
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--overlap", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3, help="timings of the cost (best of)")
    args = p.parse_args()
    run(args)


def run(args: argparse.Namespace) -> None:
    import rasterio
    import torch
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    from geogan import confidence as conf
    from geogan.checkpoint import load_generator
    from geogan.translate import TranslateConfig, translate_raster

    torch.set_num_threads(args.threads)
    measures = args.measures.split(",")
    rng = np.random.default_rng(args.seed)
    with rasterio.open(args.a) as src:
        image, valid, profile = src.read(), src.dataset_mask() > 0, dict(src.profile)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        # 2. the plain translation, then the real errors on the eastern half
        a2b = load_generator(args.checkpoint, "a2b")
        translate_raster(a2b, args.a, tmp / "plain.tif",
                         TranslateConfig(tile=args.tile, overlap=args.overlap))
        with rasterio.open(tmp / "plain.tif") as src:
            pred = src.read().astype(np.float64)
        with rasterio.open(args.b) as ref_ds, WarpedVRT(
                ref_ds, crs=profile["crs"], transform=profile["transform"],
                width=profile["width"], height=profile["height"],
                resampling=Resampling.bilinear) as vrt:
            ref = vrt.read().astype(np.float64)
            ref_valid = vrt.dataset_mask() > 0
        clean = confidences(args.checkpoint, args.a, args, measures)
        t_plain, t_conf = timed_cost(args.checkpoint, args.a, args, conf.DEFAULT_MEASURE,
                                     tmp)
        east = np.zeros_like(valid)
        east[:, profile["width"] // 2:] = True
        sel = valid & ref_valid & east
        sq = ((pred - ref) ** 2).mean(axis=0)[sel]
        # 1. pasted patches
        sources = load_sources(args.dsm, args.landsat)
        for kind, arr in sources.items():
            if arr is None:
                print(f"skipping {kind}: its file is missing")
        pasted, masks = paste(image, valid, sources, args.patches, rng)
        write_like(tmp / "pasted.tif", pasted, profile)
        ood = confidences(args.checkpoint, tmp / "pasted.tif", args, measures)
    untouched = valid & ~np.any(np.stack(list(masks.values())), axis=0)
    print(f"\nOut-of-distribution patches ({args.patches} per kind, 32-128 px, seed {args.seed}): "
          "AUROC of low confidence, pasted vs untouched pixels")
    kinds = list(masks)
    print(f"{'measure':<14}" + "".join(f"{k:>10}" for k in kinds) + f"{'overall':>10}")
    ood["random"] = rng.random(valid.shape).astype(np.float32)
    for name, c in ood.items():
        neg = -c[untouched]
        row = [auroc(-c[masks[k]], neg) for k in kinds]
        all_pasted = np.any(np.stack([masks[k] for k in kinds]), axis=0)
        row.append(auroc(-c[all_pasted], neg))
        print(f"{name:<14}" + "".join(f"{v:>10.3f}" for v in row))
    print(f"\nReal errors, eastern half vs 2020 ({sel.sum()} px): RMSE (8-bit) of the most "
          "confident pixels")
    print(f"{'measure':<14}" + "".join(f"{int(f * 100):>9}%" for f in COVERAGES))
    clean["random"] = rng.random(valid.shape).astype(np.float32)
    for name, c in clean.items():
        print(f"{name:<14}" + "".join(f"{v:>10.2f}" for v in risk_coverage(c[sel], sq)))
    print("\nMedian confidence of the untouched raster, and the median of each component's "
          "distance d_k (s_k = median / ln 2 makes a typical pixel 0.5)")
    for name, c in clean.items():
        if name in conf.MEASURES and len(conf.measure_spec(name)[0]) == 1:
            k = conf.measure_spec(name)[0][0]
            d = -np.log(np.clip(np.nanmedian(c[valid]), 1e-30, 1)) * conf.SCALES[k]
            print(f"{name:<14} confidence {np.nanmedian(c[valid]):.3f}  median d {d:.4f}  "
                  f"-> s {d / np.log(2):.4f} (now {conf.SCALES[k]})")
    print(f"\nCost, in generator work (Mpx of forward passes) and, for the default measure "
          f"({conf.DEFAULT_MEASURE}), in seconds (best of {args.repeats}); tile {args.tile}, "
          f"overlap {args.overlap}, statistics included")
    print(f"{'measure':<14}{'passes':>8}{'plain':>8}{'alone':>8}{'ratio':>8}{'with':>8}")
    for name in measures:
        plain, alone, total = work_mpx(args.checkpoint, profile["width"], profile["height"],
                                       args.tile, args.overlap, name)
        print(f"{name:<14}{conf.passes(name):>8}{plain:>8.2f}{alone:>8.2f}{alone / plain:>8.2f}"
              f"{total / plain:>8.2f}")
    print(f"seconds: plain translation {t_plain:.1f}, {conf.DEFAULT_MEASURE} alone {t_conf:.1f}: "
          f"ratio {t_conf / t_plain:.2f}, translation + confidence <= "
          f"{(t_plain + t_conf) / t_plain:.2f} x a plain translation")


if __name__ == "__main__":
    main()
