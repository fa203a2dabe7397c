"""Translation speed and memory on a large orthophoto.

Builds a SIZE x SIZE px orthophoto (default 16,000) by mirroring
geogan/sample_data/naip_2009.tif (4-band uint8, tiled, ZSTD) in a temporary folder, makes
a randomly initialised checkpoint of the chosen generator, then prints:

- end to end: ``geogan translate``'s library call from GeoTIFF to GeoTIFF, output Mpx/s;
- model only: the generator over the same number of windows, in the same batches and
  precision, with no I/O, expressed in raster Mpx/s (and window Mpx/s);
- peak RSS of the process after the end-to-end run (the input is built in a child
  process, so its memory is not counted).

With ``--wide WIDTH`` it measures instead how memory grows with a raster's width
(issue #26): it writes a VRT WIDTH px wide and as tall as the sample (724 px) that
tiles geogan/sample_data/naip_2009.tif side by side, translates it with ``geogan
translate`` in a child process (the bundled pretrained model unless ``--checkpoint``)
and prints the child's peak RSS (as ``/usr/bin/time -v`` does) and its Mpx/s. With
geogan's default ``--norm`` (global) it first measures the statistics pass alone, in a
child of its own (``--stats-only``: that alone). With
``--compare`` it translates the VRT twice, in one piece (``GEOGAN_STRIP_WIDTH`` set
to the width) and in the vertical strips geogan picks, and checks that both outputs hold
the same pixels.

Examples::

    python benchmarks/translate_speed.py                                   # ResNet-9 ngf 64
    python benchmarks/translate_speed.py --arch resnet_6blocks --ngf 8     # small CPU run
    python benchmarks/translate_speed.py --size 4000 --model-windows 50
    nice python benchmarks/translate_speed.py --wide 60000 --threads 1 --compare
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "geogan" / "sample_data" / "naip_2009.tif"
PRETRAINED = ROOT / "geogan" / "sample_data" / "pretrained" / "naip_2009_to_2020.safetensors"


def mirror_index(n_out: int, n_src: int) -> np.ndarray:
    """Indices 0..n_out-1 folded into 0..n_src-1 by mirroring: 0 1 2 .. n-1 n-1 .. 1 0 0 1 .."""
    i = np.arange(n_out) % (2 * n_src)
    return np.where(i < n_src, i, 2 * n_src - 1 - i)


def build_orthophoto(path: str, width: int, height: int) -> None:
    """Write a ``width`` x ``height`` mirrored copy of the sample orthophoto (strip by strip)."""
    import rasterio
    from rasterio.windows import Window

    with rasterio.Env(GDAL_CACHEMAX=64), rasterio.open(SAMPLE) as src:
        data = src.read()  # (4, 724, 934)
        profile = dict(src.profile)
        profile.update(driver="GTiff", width=width, height=height, tiled=True, blockxsize=256,
                       blockysize=256, compress="zstd", predictor=2, bigtiff="IF_SAFER",
                       interleave="pixel", num_threads="ALL_CPUS",
                       photometric="MINISBLACK")  # as the sample: 4 data bands, no alpha
        cols = mirror_index(width, data.shape[2])
        rows = mirror_index(height, data.shape[1])
        with rasterio.open(path, "w", **profile) as dst:
            for r0 in range(0, height, 1024):
                r1 = min(r0 + 1024, height)
                block = data[:, rows[r0:r1]][:, :, cols]
                dst.write(block, window=Window(0, r0, width, r1 - r0))


def build_wide_vrt(path: Path, width: int, height: int | None = None) -> tuple[int, int]:
    """Write a VRT ``width`` px wide tiling the sample side by side (its top ``height`` rows,
    default all); its ``(width, height)``."""
    import rasterio

    with rasterio.open(SAMPLE) as src:
        w, t, nodata = src.width, src.transform, src.nodata
        h = min(height or src.height, src.height)
        crs, count = src.crs.to_wkt(), src.count
        by, bx = src.block_shapes[0]
    nd = f"<NoDataValue>{nodata:g}</NoDataValue>" if nodata is not None else ""
    bands = []
    for b in range(1, count + 1):
        sources = []
        for x0 in range(0, width, w):
            n = min(w, width - x0)
            sources.append(
                f"<SimpleSource><SourceFilename relativeToVRT=\"0\">{escape(str(SAMPLE))}"
                f"</SourceFilename><SourceBand>{b}</SourceBand>"
                f"<SourceProperties RasterXSize=\"{w}\" RasterYSize=\"{h}\" DataType=\"Byte\" "
                f"BlockXSize=\"{bx}\" BlockYSize=\"{by}\"/>"
                f"<SrcRect xOff=\"0\" yOff=\"0\" xSize=\"{n}\" ySize=\"{h}\"/>"
                f"<DstRect xOff=\"{x0}\" yOff=\"0\" xSize=\"{n}\" ySize=\"{h}\"/></SimpleSource>")
        bands.append(f"<VRTRasterBand dataType=\"Byte\" band=\"{b}\">{nd}{''.join(sources)}"
                     "</VRTRasterBand>")
    gt = ", ".join(repr(float(v)) for v in (t.c, t.a, t.b, t.f, t.d, t.e))
    path.write_text(f"<VRTDataset rasterXSize=\"{width}\" rasterYSize=\"{h}\">"
                    f"<SRS>{escape(crs)}</SRS><GeoTransform>{gt}</GeoTransform>"
                    + "".join(bands) + "</VRTDataset>\n")
    return width, h


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run ``cmd``; its seconds and peak RSS in MB (the child's own, as /usr/bin/time -v)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)  # the output path
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed ({os.waitstatus_to_exitcode(status)}): {' '.join(cmd)}")
    return seconds, usage.ru_maxrss / 1024


def same_pixels(a: Path, b: Path) -> bool:
    """Whether two rasters hold the same pixels and masks (compared in column blocks)."""
    import numpy as np
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(a) as da, rasterio.open(b) as db:
        if (da.width, da.height, da.count, da.dtypes) != (db.width, db.height, db.count,
                                                           db.dtypes):
            return False
        for x0 in range(0, da.width, 4096):
            win = Window(x0, 0, min(4096, da.width - x0), da.height)
            if not (np.array_equal(da.read(window=win), db.read(window=win))
                    and np.array_equal(da.dataset_mask(window=win),
                                       db.dataset_mask(window=win))):
                return False
    return True


def wide_benchmark(args: argparse.Namespace) -> None:
    """Peak RSS and Mpx/s of ``geogan translate`` on a VRT ``args.wide`` px wide (#26)."""
    from geogan.blend import AxisLayout
    from geogan.translate.strips import STRIP_ENV, column_bytes, strip_width

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="geogan-wide-"))
    workdir.mkdir(parents=True, exist_ok=True)
    vrt = workdir / f"wide_{args.wide}.vrt"
    width, height = build_wide_vrt(vrt, args.wide, args.height)
    ckpt = Path(args.checkpoint or PRETRAINED)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    env.pop(STRIP_ENV, None)
    mpx = width * height / 1e6
    auto = args.strip_width or strip_width(column_bytes(args.tile, args.overlap, 4, 1, 4, 1,
                                                         256))
    windows = (AxisLayout(width, args.tile, args.overlap).count
               * AxisLayout(height, args.tile, args.overlap).count)
    print(f"{vrt.name}: {width} x {height} px ({mpx:.1f} Mpx, {windows} windows), "
          f"{ckpt.name}; tile {args.tile} overlap {args.overlap}; norm {args.norm or 'default'}; "
          f"threads {args.threads}; "
          f"strips of at most {auto} px when wider; cpus {os.cpu_count()}", flush=True)
    if args.norm in (None, "global"):  # geogan's default: the statistics pass comes first
        cmd = [sys.executable, str(Path(__file__).resolve()), "--stats-pass", str(vrt),
               "--checkpoint", str(ckpt), "--device", args.device]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        seconds, peak = run_measured(cmd, env)
        print(f"global statistics pass alone: peak RSS {peak:.0f} MB, {seconds:.1f} s",
              flush=True)
        if args.stats_only:
            return
    runs = [("one piece", {STRIP_ENV: str(width)})] if args.compare else []
    runs.append(("strips" if width > auto else "automatic",
                 {STRIP_ENV: str(args.strip_width)} if args.strip_width else {}))
    outs = []
    for label, extra in runs:
        out = workdir / f"out_{len(outs)}.tif"
        cmd = [sys.executable, "-m", "geogan", "--progress", "none", "translate", str(ckpt),
               str(vrt), "-o", str(out), "--tile", str(args.tile), "--overlap",
               str(args.overlap), "--blend", args.blend, "--device", args.device,
               "--overwrite"]
        if args.threads:
            cmd += ["-j", str(args.threads)]
        if args.norm:
            cmd += ["--norm", args.norm]
        seconds, peak = run_measured(cmd, {**env, **extra})
        print(f"{label}: peak RSS {peak:.0f} MB, {seconds:.1f} s, {mpx / seconds:.2f} Mpx/s",
              flush=True)
        outs.append(out)
    if len(outs) == 2:
        print(f"same pixels and masks in both: {'yes' if same_pixels(*outs) else 'NO'}")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


def stats_pass(args: argparse.Namespace) -> None:
    """The child of ``--wide``: ``global`` statistics of ``args.stats_pass`` alone, as
    ``geogan translate`` estimates them first with its default ``--norm``."""
    import rasterio
    import torch

    from geogan.checkpoint import load_generator
    from geogan.devices import resolve_device
    from geogan.normstats import estimate_stats
    from geogan.translate.runtime import resolve_precision

    if args.threads:
        torch.set_num_threads(args.threads)
    device = str(resolve_device(args.device))
    generator = load_generator(args.checkpoint or PRETRAINED, device=device)
    with rasterio.open(args.stats_pass) as src:
        bands = list(range(1, src.count + 1))[:generator.in_bands]
    estimate_stats(generator, [Path(args.stats_pass)], "global", [bands], device=device,
                   precision=resolve_precision(args.precision, device))


def make_checkpoint(path: Path, arch: str, ngf: int) -> Path:
    """A random 4-band pix2pix checkpoint (2009 -> 2020), as the sample pair."""
    from _harness import random_checkpoint

    return random_checkpoint(path, arch, ngf, bands=4, model="pix2pix", names=("2009", "2020"))


def rss_mb() -> float:
    """Current resident set size in MB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def model_only(checkpoint: Path, config, windows: int, limit: int | None) -> tuple[float, int]:
    """Seconds the generator takes for ``windows`` windows (timed on ``limit`` of them)."""
    import torch

    from geogan.checkpoint import load_generator
    from geogan.devices import autocast
    from geogan.translate.runtime import (
        prepare_module,
        resolve_batch_size,
        resolve_device,
        resolve_precision,
    )

    device = resolve_device(config.device)
    kind = "cuda" if device.startswith("cuda") else "cpu"
    batch = resolve_batch_size(config.batch_size, device)
    precision = resolve_precision(config.precision, device)
    gen = load_generator(checkpoint, "a2b", device)
    module = prepare_module(gen.module, device, config.compile)
    x = torch.rand(batch, 4, config.tile, config.tile, device=device) * 2 - 1
    if kind == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    timed = min(windows, limit) if limit else windows
    with torch.inference_mode(), autocast(precision, device):
        for _ in range(2 if kind == "cuda" else 1):  # warm-up (and compile)
            module(x)
        if kind == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        done = 0
        while done < timed:
            module(x).float()
            done += batch
        if kind == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    return elapsed * windows / done, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16000, help="raster width and height (px)")
    parser.add_argument("--height", type=int, default=None,
                        help="raster height (px) when it differs from the width (with --wide: "
                             "at most the sample's 724 px, the default)")
    parser.add_argument("--arch", default="resnet_9blocks")
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--blend", default="cosine")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--model-windows", type=int, default=None,
                        help="time the model alone on this many windows and extrapolate "
                             "(default: all windows of the raster)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice, one per core)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="folder for the input/output (default: a temporary folder)")
    parser.add_argument("--wide", type=int, default=None, metavar="WIDTH",
                        help="measure peak RSS on a VRT this wide instead (see above)")
    parser.add_argument("--checkpoint", default=None,
                        help="with --wide: the checkpoint (default: the bundled pretrained one)")
    parser.add_argument("--compare", action="store_true",
                        help="with --wide: also translate in one piece, and compare")
    parser.add_argument("--norm", default=None,
                        help="with --wide: geogan translate's --norm (default: geogan's); "
                             "window leaves out the statistics pass, whose memory is its own")
    parser.add_argument("--strip-width", type=int, default=None,
                        help="with --wide: strips of this many px instead of geogan's choice")
    parser.add_argument("--stats-only", action="store_true",
                        help="with --wide: measure the global statistics pass alone, then stop")
    parser.add_argument("--stats-pass", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stats_pass:
        stats_pass(args)
        return
    if args.wide:
        wide_benchmark(args)
        return

    import torch

    from geogan.blend import AxisLayout
    from geogan.translate import TranslateConfig, translate_files

    if args.threads:
        torch.set_num_threads(args.threads)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="geogan-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    width, height = args.size, args.height or args.size
    src = workdir / f"ortho_{width}x{height}.tif"
    if not src.exists():
        t0 = time.perf_counter()
        ctx = multiprocessing.get_context("spawn")
        proc = ctx.Process(target=build_orthophoto, args=(str(src), width, height))
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            sys.exit(f"building {src} failed")
        print(f"built {src} ({width} x {height} px, "
              f"{src.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s")
    ckpt = make_checkpoint(workdir / "bench.safetensors", args.arch, args.ngf)
    config = TranslateConfig(tile=args.tile, overlap=args.overlap, blend=args.blend,
                             batch_size=args.batch_size, device=args.device,
                             precision=args.precision, compile=args.compile, overwrite=True)
    mpx = width * height / 1e6
    windows = (AxisLayout(width, args.tile, args.overlap).count
               * AxisLayout(height, args.tile, args.overlap).count)
    print(f"generator {args.arch} ngf {args.ngf}; tile {args.tile} overlap {args.overlap} "
          f"({windows} windows, {windows * args.tile ** 2 / 1e6 / mpx:.2f}x the raster's pixels)"
          f"; device {args.device}; torch threads {torch.get_num_threads()}; "
          f"cpus {os.cpu_count()}")
    rss_before = rss_mb()
    last = [0.0]

    def progress(done: float, total: float, **info: float | str) -> None:
        if done - last[0] >= total / 10 or done >= total:
            last[0] = done
            print(f"  {100 * done / total:5.1f}%  {info.get('mpx_s', 0.0):.2f} Mpx/s  "
                  f"RSS {rss_mb():.0f} MB", flush=True)

    out = workdir / "translated.tif"
    t0 = time.perf_counter()
    translate_files(ckpt, [src], out, config, progress=progress)
    e2e = time.perf_counter() - t0
    peak = peak_rss_mb()
    print(f"end to end: {e2e:.1f} s, {mpx / e2e:.2f} Mpx/s output "
          f"({mpx:.0f} Mpx, {out.stat().st_size / 1e6:.0f} MB written)")
    print(f"RSS before translating: {rss_before:.0f} MB; peak RSS: {peak:.0f} MB")

    seconds, timed = model_only(ckpt, config, windows, args.model_windows)
    note = f" (timed on {timed} windows, extrapolated)" if timed < windows else ""
    print(f"model only: {seconds:.1f} s for the same {windows} windows, {mpx / seconds:.2f} Mpx/s "
          f"raster, {windows * args.tile ** 2 / 1e6 / seconds:.2f} Mpx/s windows{note}")
    print(f"end to end / model only: {seconds / e2e:.2f}")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
