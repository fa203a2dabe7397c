"""Translation speed and memory on a large orthophoto.

Builds a SIZE x SIZE px orthophoto (default 16,000) by mirroring
geogan/sample_data/naip_2009.tif (4-band uint8, tiled, ZSTD) in a temporary folder, makes
a randomly initialised checkpoint of the chosen generator, then prints:

- end to end: ``geogan translate``'s library call from GeoTIFF to GeoTIFF, output Mpx/s;
- model only: the generator over the same number of windows, in the same batches and
  precision, with no I/O, expressed in raster Mpx/s (and window Mpx/s);
- peak RSS of the process after the end-to-end run (the input is built in a child
  process, so its memory is not counted).

Examples::

    python benchmarks/translate_speed.py                                   # ResNet-9 ngf 64
    python benchmarks/translate_speed.py --arch resnet_6blocks --ngf 8     # small CPU run
    python benchmarks/translate_speed.py --size 4000 --model-windows 50
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SAMPLE = Path(__file__).resolve().parents[1] / "geogan" / "sample_data" / "naip_2009.tif"


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


def make_checkpoint(path: Path, arch: str, ngf: int) -> Path:
    import torch

    from geogan.checkpoint import save_checkpoint
    from geogan.contract.checkpoint import CheckpointMeta
    from geogan.models import build_generator
    from geogan.normalize import BandNorm

    torch.manual_seed(0)
    kwargs = {"in_channels": 4, "out_channels": 4, "ngf": ngf}
    g = build_generator(arch, **kwargs)
    norm = BandNorm.full_range("uint8", 4, 0).to_json()
    meta = {"model": "pix2pix",
            "generators": {"a2b": {"key": "G_A2B", "arch": arch, "kwargs": kwargs}},
            "domains": {"a": {"name": "2009", "norm": norm}, "b": {"name": "2020", "norm": norm}},
            "chip_size": 256}
    return save_checkpoint(path, {f"G_A2B.{k}": v for k, v in g.state_dict().items()},
                           CheckpointMeta.from_json(meta))


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
                        help="raster height (px) when it differs from the width")
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
    args = parser.parse_args()

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
