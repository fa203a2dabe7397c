"""How much the translation depends on how the raster is cut, for each ``--norm`` mode.

Translates geogan/sample_data/naip_2009.tif (934 x 724 px) with the shipped model
(geogan/sample_data/pretrained/naip_2009_to_2020.safetensors) once as a single window over the
whole image (``--tile 1024 --overlap 128 --norm window``: the reference), then with every
mode and ``--tile`` 128/256/512 (overlap tile/8), and prints for each:

- mean / 99th percentile / max absolute difference to the reference (DN, all bands,
  valid pixels), and to the same mode run as one whole-image window;
- mean / 99th percentile to the exact translation: the generator run once on the whole
  raster (instance norm over exactly its pixels, no square window, no padding), on the
  interior (EDGE px in from the edge, where windows see mirrored context);
- seam ratio: mean |step| of the difference map across window-core boundaries over the
  mean |step| between other neighbouring pixels (1.0: the tile grid does not show);
- end-to-end CPU seconds (all threads; steadier than wall time on a shared machine) and
  output Mpx per CPU second, statistics estimation included, and the cost relative to
  ``--norm window`` at the same tile (one single pass).

``--precision`` compares bf16 autocast with fp32 (mean |difference| in DN).
``--size 16000`` instead translates a 16,000 x 16,000 px mirror of the sample once with
the default mode (tile 512) and prints Mpx/s and the peak RSS (takes minutes).

Examples::

    OMP_NUM_THREADS=2 python benchmarks/normstats.py
    OMP_NUM_THREADS=2 python benchmarks/normstats.py --tiles 256 --modes window,global
    OMP_NUM_THREADS=2 python benchmarks/normstats.py --size 16000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "geogan" / "sample_data" / "naip_2009.tif"
MODEL = ROOT / "geogan" / "sample_data" / "pretrained" / "naip_2009_to_2020.safetensors"


def read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import rasterio

    with rasterio.open(path) as src:
        return src.read().astype(np.float64), src.dataset_mask() > 0


def seam_ratio(diff: np.ndarray, stride: int) -> float:
    """Mean |step| of ``diff`` (C, H, W) across core boundaries / elsewhere, both axes."""
    num, den = [], []
    for axis in (1, 2):
        n = diff.shape[axis]
        d = np.abs(np.diff(diff, axis=axis)).mean(axis=tuple(i for i in (0, 1, 2) if i != axis))
        edges = [k * stride - 1 for k in range(1, -(-n // stride))]
        if not edges:
            continue
        inner = np.ones(d.shape, dtype=bool)
        inner[edges] = False
        num.append(d[edges].mean())
        den.append(d[inner].mean())
    return float(np.mean(num) / np.mean(den)) if num else float("nan")


#: Pixels at the raster's edge left out of the comparison with :func:`exact`: there
#: geogan's windows see mirrored context and the one-pass reference does not.
EDGE = 48


def exact(gen, src: Path) -> np.ndarray:
    """The generator on the whole raster in one pass, no window: instance norm over exactly
    the raster's pixels (padded on the right and bottom to the size multiple only).

    A ``--tile 1024 --norm window`` window over a 934 x 724 px raster is square (936 px),
    so a third of it is mirrored padding, and its statistics include that padding; this
    reference has none.
    """
    import rasterio
    import torch

    with rasterio.open(src) as ds:
        raw = ds.read().astype(np.float32)
    lo = np.asarray(gen.in_norm.lo, np.float32)[:, None, None]
    hi = np.asarray(gen.in_norm.hi, np.float32)[:, None, None]
    x = torch.from_numpy((raw - lo) / (hi - lo) * 2 - 1)[None]
    m = int(getattr(gen.module, "size_multiple", 4))
    _, _, h, w = x.shape
    x = torch.nn.functional.pad(x, (0, (-w) % m, 0, (-h) % m), mode="reflect")
    with torch.inference_mode():
        y = gen.module.eval()(x)[0, :, :h, :w].numpy()
    olo = np.asarray(gen.out_norm.lo, np.float32)[:, None, None]
    ohi = np.asarray(gen.out_norm.hi, np.float32)[:, None, None]
    return np.clip(np.rint((y + 1) / 2 * (ohi - olo) + olo), olo, ohi).astype(np.float64)


def translate(gen, src: Path, out: Path, **kw) -> float:
    """CPU seconds of one translation (all threads): steadier than wall time on a busy machine."""
    from geogan.translate import TranslateConfig, translate_raster

    t0 = time.process_time()
    translate_raster(gen, src, out, TranslateConfig(overwrite=True, **kw))
    return time.process_time() - t0


def table(args: argparse.Namespace, workdir: Path) -> None:
    from geogan.checkpoint import load_generator

    gen = load_generator(args.checkpoint, "a2b", "cpu")
    ref_path = workdir / "reference.tif"
    translate(gen, args.input, ref_path, tile=args.ref_tile, overlap=args.ref_tile // 8,
              norm="window")
    ref, mask = read(ref_path)
    truth = exact(gen, args.input)
    inner = np.zeros_like(mask)
    inner[EDGE:-EDGE, EDGE:-EDGE] = mask[EDGE:-EDGE, EDGE:-EDGE]
    mpx = ref.shape[1] * ref.shape[2] / 1e6
    print(f"{args.input.name}: {ref.shape[2]} x {ref.shape[1]} px; reference: one window "
          f"(--tile {args.ref_tile} --norm window); model {args.checkpoint.name}")
    e = np.abs(ref - truth)[:, inner]
    print(f"the reference vs the exact one-pass translation (interior, {EDGE} px in from the "
          f"edge): mean {e.mean():.2f}, p99 {np.percentile(e, 99):.1f}")
    selves = {}
    for mode in args.modes:
        out = workdir / f"{mode}_whole.tif"
        translate(gen, args.input, out, tile=args.ref_tile, overlap=args.ref_tile // 8,
                  norm=mode)
        selves[mode] = read(out)[0]
    print(f"{'':20} {'vs the reference':>17}  {'vs same mode, one window':>24}  "
          f"{'vs exact':>11}")
    print(f"{'mode':8} {'tile':>5} {'ovl':>4} {'mean':>6} {'p99':>5} {'max':>5} {'mean':>6} "
          f"{'p99':>5} {'max':>5} {'mean':>6} {'p99':>4} {'seam':>5} {'cpu s':>6} {'Mpx/s':>6} "
          f"{'cost':>5}")
    rows = []
    for tile in args.tiles:
        base = None
        for mode in args.modes:
            out = workdir / f"{mode}_{tile}.tif"
            overlap = args.overlap if args.overlap is not None else tile // 8
            times = [translate(gen, args.input, out, tile=tile, overlap=overlap, norm=mode,
                               precision=args.precision) for _ in range(args.repeat)]
            seconds = min(times)
            if mode == "window":
                base = seconds
            y, _ = read(out)
            diff = (y - ref) * mask
            a = np.abs(diff[:, mask])
            b = np.abs(y - selves[mode])[:, mask]
            c = np.abs(y - truth)[:, inner]
            row = {"mode": mode, "tile": tile, "overlap": overlap, "mean": float(a.mean()),
                   "p99": float(np.percentile(a, 99)), "max": float(a.max()),
                   "self_mean": float(b.mean()), "self_p99": float(np.percentile(b, 99)),
                   "self_max": float(b.max()), "exact_mean": float(c.mean()),
                   "exact_p99": float(np.percentile(c, 99)),
                   "seam": seam_ratio(diff, tile - overlap), "seconds": seconds,
                   "mpx_s": mpx / seconds, "cost": seconds / base if base else float("nan")}
            rows.append(row)
            print(f"{mode:8} {tile:5d} {overlap:4d} {row['mean']:6.2f} {row['p99']:5.1f} "
                  f"{row['max']:5.0f} {row['self_mean']:6.2f} {row['self_p99']:5.1f} "
                  f"{row['self_max']:5.0f} {row['exact_mean']:6.2f} {row['exact_p99']:4.0f} "
                  f"{row['seam']:5.2f} {seconds:6.2f} {row['mpx_s']:6.3f} {row['cost']:5.2f}",
                  flush=True)
    if args.json:
        print(json.dumps(rows))


def precision(args: argparse.Namespace, workdir: Path) -> None:
    import torch

    from geogan.checkpoint import load_generator

    gen = load_generator(args.checkpoint, "a2b", "cpu")
    print(f"cpu capability {torch.backends.cpu.get_cpu_capability()}; torch threads "
          f"{torch.get_num_threads()}")
    for mode in args.modes:
        for tile in args.tiles:
            outs = {}
            for prec in ("fp32", "bf16"):
                out = workdir / f"{prec}.tif"
                seconds = translate(gen, args.input, out, tile=tile, overlap=tile // 8,
                                    norm=mode, precision=prec)
                outs[prec] = read(out)
                print(f"  {mode} tile {tile} {prec}: {seconds:.2f} s", flush=True)
            (a, mask), (b, _) = outs["fp32"], outs["bf16"]
            d = np.abs(a - b)[:, mask]
            print(f"{mode} tile {tile}: bf16 vs fp32 mean {d.mean():.3f} DN, "
                  f"p99 {np.percentile(d, 99):.1f}, max {d.max():.0f}")


def large(args: argparse.Namespace, workdir: Path) -> None:
    import logging

    logging.basicConfig(format="%(message)s")
    logging.getLogger("geogan.normstats").setLevel(logging.INFO)  # the estimation's figures
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from translate_speed import build_orthophoto, peak_rss_mb

    from geogan.translate import TranslateConfig, translate_files

    src = workdir / f"ortho_{args.size}.tif"
    if not src.exists():
        ctx = multiprocessing.get_context("spawn")
        proc = ctx.Process(target=build_orthophoto, args=(str(src), args.size, args.size))
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            sys.exit(f"building {src} failed")
    mode = args.modes[-1] if len(args.modes) == 1 else None
    config = TranslateConfig(overwrite=True, precision=args.precision,
                             **({"norm": mode} if mode else {}))
    last = [0.0]

    def progress(done: float, total: float, **info: float | str) -> None:
        if done - last[0] >= total / 10 or done >= total:
            last[0] = done
            print(f"  {100 * done / total:5.1f}%  {info.get('mpx_s', 0.0):.3f} Mpx/s  "
                  f"peak RSS {peak_rss_mb():.0f} MB", flush=True)

    t0 = time.perf_counter()
    translate_files(args.checkpoint, [src], workdir / "out.tif", config, progress=progress)
    seconds = time.perf_counter() - t0
    mpx = args.size ** 2 / 1e6
    print(f"{args.size} x {args.size} px, --norm {config.norm}, tile {config.tile}, "
          f"--precision {config.precision}: "
          f"{seconds:.0f} s, {mpx / seconds:.3f} Mpx/s; peak RSS {peak_rss_mb():.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=MODEL)
    parser.add_argument("--input", type=Path, default=SAMPLE)
    parser.add_argument("--tiles", type=lambda s: [int(v) for v in s.split(",")],
                        default=[128, 256, 512])
    parser.add_argument("--modes", type=lambda s: s.split(","),
                        default=["window", "global", "dense"])
    parser.add_argument("--ref-tile", type=int, default=1024)
    parser.add_argument("--overlap", type=int, default=None,
                        help="overlap of the tiled runs (default: tile/8)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per setting (best taken)")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--compare-precision", action="store_true",
                        help="compare bf16 autocast with fp32 instead")
    parser.add_argument("--size", type=int, default=None,
                        help="translate a SIZE x SIZE mirror of the sample once instead")
    parser.add_argument("--json", action="store_true", help="also print the rows as JSON")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="geogan-normstats-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        if args.size:
            large(args, workdir)
        elif args.compare_precision:
            precision(args, workdir)
        else:
            table(args, workdir)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"peak RSS of this process: "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
