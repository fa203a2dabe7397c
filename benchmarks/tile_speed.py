"""How fast ``geogan tile`` cuts a large orthophoto, against a plain windowed read.

Builds a SIZE x SIZE GeoTIFF by mirroring a sample orthophoto (tiled 512 px and
DEFLATE-compressed like the sample), then, each in a fresh process so peak memory
is its own:

* plain read: ``src.read(window=w)`` for every chip window, nothing else;
* tiling: :func:`geogan.tiling.tile_rasters` over the same windows (chips,
  nodata check, index.gpkg).

Prints chips/s, MB/s (source pixels per second), the ratio of tiling speed to the
plain read, and each process's peak RSS. Run from the repository root::

    python benchmarks/tile_speed.py               # 16,000 x 16,000 px
    python benchmarks/tile_speed.py --size 4000   # quicker
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "geogan" / "sample_data" / "naip_2009.tif"


def build_mirrored(sample: Path, path: Path, size: int) -> None:
    """Write a ``size x size`` raster made of ``sample`` mirrored back and forth, strip by strip."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    with rasterio.open(sample) as src:
        data = src.read()
        profile = src.profile
        t = src.transform
    h, w = data.shape[1:]
    flips = [data, data[:, :, ::-1]]
    profile.update(width=size, height=size, tiled=True, blockxsize=512, blockysize=512,
                   compress="deflate", interleave="pixel", bigtiff="IF_SAFER",
                   transform=from_origin(t.c, t.f, t.a, -t.e),
                   photometric="MINISBLACK")  # as the sample: 4 data bands, no alpha
    with rasterio.open(path, "w", **profile) as dst:
        for i, row in enumerate(range(0, size, h)):
            band_h = min(h, size - row)
            reps = -(-size // w)
            strip = np.concatenate([flips[j % 2] for j in range(reps)], axis=2)[:, :, :size]
            if i % 2:
                strip = strip[:, ::-1, :]
            dst.write(np.ascontiguousarray(strip[:, :band_h]), window=Window(0, row, size,
                                                                              band_h))


def _peak_rss_mb() -> float:
    """Peak RSS of this process. VmHWM, since ru_maxrss keeps the parent's peak across exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_plain(path: str, chip: int, overlap: int) -> dict[str, float]:
    import rasterio
    from rasterio.windows import Window

    from geogan.grid import chip_windows

    with rasterio.Env(GDAL_CACHEMAX=64), rasterio.open(path) as src:
        windows = chip_windows(src.width, src.height, chip, overlap)
        start = time.perf_counter()
        nbytes = 0
        for win in windows:
            nbytes += src.read(window=Window(*win)).nbytes
        elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "chips": len(windows), "bytes": nbytes, "rss_mb": _peak_rss_mb()}


def run_tile(path: str, outdir: str, chip: int, overlap: int, threads: int,
             compress: str) -> dict[str, float]:
    import rasterio

    from geogan.tiling import TileConfig, tile_rasters

    config = TileConfig(size=chip, overlap=overlap, max_nodata=1.0, threads=threads,
                        compress=compress)
    with rasterio.open(path) as src:
        px_bytes = src.count * np.dtype(src.dtypes[0]).itemsize
    start = time.perf_counter()
    result = tile_rasters([path], outdir, config)
    elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "chips": result.chips, "bytes": result.chips * chip * chip *
            px_bytes, "rss_mb": _peak_rss_mb()}


def _child(args: list[str]) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", *args], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16000, help="raster side in pixels")
    parser.add_argument("--chip", type=int, default=256, help="chip size in pixels")
    parser.add_argument("--overlap", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="chip-writing threads")
    parser.add_argument("--compress", default="none", help="chip compression")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, best kept")
    parser.add_argument("--sample", type=Path, default=SAMPLE)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where to build the raster and chips (default: a temp dir)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        kind, *rest = args.child
        if kind == "plain":
            res = run_plain(rest[0], int(rest[1]), int(rest[2]))
        else:
            res = run_tile(rest[0], rest[1], int(rest[2]), int(rest[3]), int(rest[4]), rest[5])
        print(json.dumps(res))
        return

    work = Path(tempfile.mkdtemp(prefix="geogan-bench-", dir=args.workdir))
    try:
        raster = work / f"mirrored_{args.size}.tif"
        t0 = time.perf_counter()
        build_mirrored(args.sample, raster, args.size)
        print(f"built {args.size} x {args.size} px mirrored from {args.sample.name} in "
              f"{time.perf_counter() - t0:.1f} s ({raster.stat().st_size / 2**20:.0f} MiB on "
              "disk, tiled 512, DEFLATE)")
        plain, tile = [], []
        for i in range(args.repeat):
            plain.append(_child(["plain", str(raster), str(args.chip), str(args.overlap)]))
            outdir = work / f"chips{i}"
            tile.append(_child(["tile", str(raster), str(outdir), str(args.chip),
                                str(args.overlap), str(args.threads), args.compress]))
            shutil.rmtree(outdir, ignore_errors=True)
        p = min(plain, key=lambda r: r["seconds"])
        t = min(tile, key=lambda r: r["seconds"])
        mb = 2**20
        print(f"chips: {t['chips']:.0f} of {args.chip} px, overlap {args.overlap}, "
              f"threads {args.threads}, chip compression {args.compress}")
        print(f"plain windowed read: {p['seconds']:.2f} s, {p['chips'] / p['seconds']:.0f} "
              f"chips/s, {p['bytes'] / mb / p['seconds']:.0f} MB/s, peak RSS "
              f"{p['rss_mb']:.0f} MB")
        print(f"geogan tile:         {t['seconds']:.2f} s, {t['chips'] / t['seconds']:.0f} "
              f"chips/s, {t['bytes'] / mb / t['seconds']:.0f} MB/s, peak RSS "
              f"{t['rss_mb']:.0f} MB")
        print(f"ratio tile / plain read (speed): {p['seconds'] / t['seconds']:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
