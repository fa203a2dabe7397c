"""How fast ``geogan tile`` cuts a large orthophoto, against gdal_retile.py and plain rasterio.

Builds a SIZE x SIZE 4-band uint8 GeoTIFF by mirroring a sample orthophoto (tiled
512 px and DEFLATE-compressed like the sample), then runs, each as the command a user
would type, in a fresh process, in paired rounds whose order alternates:

* ``geogan tile RASTER -o OUT --size CHIP`` (uncompressed chips and index.gpkg);
* ``gdal_retile.py -ps CHIP CHIP -tileIndex index.shp -targetDir OUT RASTER`` (the same
  number of uncompressed chips of the same band count, and an index), when GDAL's
  Python scripts are installed;
* a plain rasterio script: ``src.read(window=w)`` and a georeferenced uncompressed GeoTIFF
  written with ``rasterio.open(..., "w")`` for every chip window (no index, no checks);
* the same plain script reading only.

Prints the median wall and CPU time of each, the median over rounds of the paired ratio
gdal_retile / geogan (1.0 or more: geogan is at least as fast), and geogan's time over
the plain read + write and over the plain read. The load average is printed too, since
a shared machine slows every command; the paired ratios stay meaningful. Run from the
repository root::

    python benchmarks/tile_speed.py                      # 6000 x 6000 px, 5 rounds
    python benchmarks/tile_speed.py --size 16000 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
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


def plain(raster: str, outdir: str, chip: int, overlap: int, write: bool) -> None:
    """The plain script: read every chip window and (``write``) save it as a GeoTIFF."""
    import rasterio
    from rasterio.windows import Window
    from rasterio.windows import transform as window_transform

    from geogan.grid import chip_windows

    os.makedirs(outdir, exist_ok=True)
    with rasterio.open(raster) as src:
        profile = {"driver": "GTiff", "width": chip, "height": chip, "count": src.count,
                   "dtype": src.dtypes[0], "crs": src.crs, "nodata": src.nodata}
        for win in chip_windows(src.width, src.height, chip, overlap):
            data = src.read(window=Window(*win))
            if write:
                t = window_transform(Window(*win), src.transform)
                with rasterio.open(f"{outdir}/c{win.col_off}_r{win.row_off}.tif", "w",
                                   transform=t, **profile) as dst:
                    dst.write(data)


def _commands(args: argparse.Namespace, raster: Path, out: Path) -> dict[str, list[str]]:
    size, ov = str(args.chip), str(args.overlap)
    cmds = {"geogan tile": [sys.executable, "-m", "geogan", "--progress", "none", "tile",
                            str(raster), "-o", str(out / "geogan"), "--size", size,
                            "--overlap", ov, "-j", str(args.threads)]}
    retile = shutil.which("gdal_retile.py") or shutil.which("gdal_retile")
    if retile is not None:
        (out / "retile").mkdir(parents=True, exist_ok=True)
        cmds["gdal_retile.py"] = [retile, "-q", "-ps", size, size, "-overlap", ov,
                                  "-tileIndex", "index.shp", "-targetDir",
                                  str(out / "retile"), str(raster)]
    for name, write in (("plain read+write", "1"), ("plain read", "0")):
        cmds[name] = [sys.executable, __file__, "--plain", str(raster),
                      str(out / name.replace(" ", "_").replace("+", "_")), size, ov, write]
    return cmds


def _timed(cmd: list[str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of ``cmd`` run to completion."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _chip_count(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*.tif")) if folder.is_dir() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=6000, help="raster side in pixels")
    parser.add_argument("--chip", type=int, default=256, help="chip size in pixels")
    parser.add_argument("--overlap", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="geogan's chip-writing threads (-j; 1 is its default)")
    parser.add_argument("--rounds", type=int, default=5, help="paired rounds of every command")
    parser.add_argument("--sample", type=Path, default=SAMPLE)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where to build the raster and chips (default: a temp dir)")
    parser.add_argument("--plain", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        raster, outdir, chip, overlap, write = args.plain
        plain(raster, outdir, int(chip), int(overlap), write == "1")
        return

    work = Path(tempfile.mkdtemp(prefix="geogan-bench-", dir=args.workdir))
    try:
        raster = work / f"mirrored_{args.size}.tif"
        t0 = time.perf_counter()
        build_mirrored(args.sample, raster, args.size)
        print(f"raster: {args.size} x {args.size} px, 4 bands uint8, tiled 512, DEFLATE "
              f"({raster.stat().st_size / 2**20:.0f} MiB, built in "
              f"{time.perf_counter() - t0:.1f} s); chips of {args.chip} px, overlap "
              f"{args.overlap}, uncompressed; geogan -j {args.threads}")
        load0 = os.getloadavg()
        times: dict[str, list[tuple[float, float]]] = {}
        counts: dict[str, int] = {}
        for r in range(args.rounds):
            out = work / f"round{r}"
            cmds = _commands(args, raster, out)
            names = list(cmds) if r % 2 == 0 else list(reversed(cmds))
            for name in names:
                times.setdefault(name, []).append(_timed(cmds[name]))
            for name in cmds:
                folder = {"geogan tile": "geogan", "gdal_retile.py": "retile",
                          "plain read+write": "plain_read_write"}.get(name)
                if folder:
                    counts[name] = _chip_count(out / folder)
            shutil.rmtree(out, ignore_errors=True)
        _report(times, counts, args.rounds, load0, os.getloadavg())
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _report(times: dict[str, list[tuple[float, float]]], counts: dict[str, int], rounds: int,
            load0: tuple[float, ...], load1: tuple[float, ...]) -> None:
    print(f"{rounds} paired rounds (order alternating); load average (1 min) "
          f"{load0[0]:.1f} before, {load1[0]:.1f} after, on {os.cpu_count()} CPUs")
    for name, runs in times.items():
        chips = f", {counts[name]} chips" if name in counts else ""
        print(f"{name + ':':19s} median {statistics.median(w for w, _ in runs):.2f} s wall, "
              f"{statistics.median(c for _, c in runs):.2f} s CPU{chips}")
    geo = times["geogan tile"]

    def ratio(other: str, cpu: bool = False, inverse: bool = False) -> float:
        per_round = [(o[cpu] / g[cpu]) for o, g in zip(times[other], geo, strict=True)]
        if inverse:
            per_round = [1.0 / x for x in per_round]
        return statistics.median(per_round)

    if "gdal_retile.py" in times:
        print(f"ratio gdal_retile / geogan: {ratio('gdal_retile.py'):.2f} wall, "
              f"{ratio('gdal_retile.py', cpu=True):.2f} CPU (median of paired rounds; "
              ">= 1.0: geogan at least as fast)")
    else:
        print("gdal_retile.py not found (install GDAL's Python scripts): no ratio to it")
    for plain_name in ("plain read+write", "plain read"):
        print(f"ratio geogan / {plain_name}: {ratio(plain_name, inverse=True):.2f} wall, "
              f"{ratio(plain_name, cpu=True, inverse=True):.2f} CPU")


if __name__ == "__main__":
    main()
