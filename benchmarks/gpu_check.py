"""GPU check: every CUDA path of geogan in one go, each checked against the CPU, one JSON line.

Made for the short time a GPU is at hand (under 8 minutes on one H100/H200). On a
machine with CUDA it runs, in order:

1. ``train_check``: one small CycleGAN, pix2pix and CUT each, two optimisation steps
   from the same weights and images on the CPU (fp32), on CUDA in fp32 (TF32 off) and
   on CUDA with bf16 autocast and channels_last: losses and the generator's output
   after the steps must be finite and close to the CPU's.
2. ``train_speed``: the reference networks (ResNet-9 ngf 64 / U-Net 256, 70x70
   PatchGANs, 256 px) at batch 16 with bf16 autocast, channels_last and
   ``torch.compile``: the compiled first step must match the eager one; then images/s.
3. ``translate``: a 16,000 x 16,000 px 4-band orthophoto (the mirrored sample) end to
   end with ``--compile``, GeoTIFF to GeoTIFF, with the GPU's busy fraction sampled
   meanwhile; the generator alone over the same windows; and a 1024 px crop translated
   on CUDA and on the CPU, whose outputs must agree.
4. ``train_loop``: ``geogan train`` itself (loader workers, channels_last, bf16) on
   chips cut from that orthophoto.
5. ``ddp``: with two or more GPUs, the same training under torchrun (NCCL).

It prints one JSON line: training images/s per model, translate Mpx/s end to end and
for the generator alone, GPU busy fraction (``torch.cuda.utilization`` or
``nvidia-smi`` sampling), peak GPU memory, each check's figures, and ``ok``. The exit
status is 1 when a check failed. Without CUDA it logs that and exits 0, doing nothing.
``--cpu-dry-run`` runs every step with tiny settings on the CPU (the plumbing only).

Example (on the GPU machine)::

    python benchmarks/gpu_check.py > gpu_check.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # geogan from this checkout when not installed

log = logging.getLogger("gpu_check")
MODELS = ("cyclegan", "pix2pix", "cut")
#: The steps, in the order they run (``--skip`` takes these names).
PHASES = ("train_check", "train_speed", "translate", "train_loop", "ddp")


@dataclass(frozen=True)
class Plan:
    """Sizes of each step: the real ones on a GPU, tiny ones for ``--cpu-dry-run``."""

    device: str = "cuda"
    check_size: int = 64          # px of the small correctness models
    check_ngf: int = 16
    speed_size: int = 256
    speed_ngf: int = 64
    speed_batch: int = 16
    speed_steps: int = 20
    speed_warmup: int = 3
    generators: dict[str, str] = field(default_factory=lambda: {
        "cyclegan": "resnet_9blocks", "pix2pix": "unet_256", "cut": "resnet_9blocks"})
    compile: bool = True
    raster_px: int = 16000
    crop_px: int = 1024
    translate_arch: str = "resnet_9blocks"
    translate_ngf: int = 64
    generator_windows: int | None = 400  # time the generator alone on this many windows
    loop_steps: int = 30
    chips: int = 64

    @classmethod
    def dry(cls) -> Plan:
        gens = {m: "resnet_6blocks" for m in MODELS}
        return cls(device="cpu", check_size=32, check_ngf=4, speed_size=32, speed_ngf=4,
                   speed_batch=2, speed_steps=2, speed_warmup=1, generators=gens,
                   compile=False, raster_px=600, crop_px=256, translate_arch="resnet_6blocks",
                   translate_ngf=4, generator_windows=4, loop_steps=2, chips=4)


class Checks:
    """Each check's figures and verdict, and the timings of the steps."""

    def __init__(self) -> None:
        self.results: dict[str, dict[str, Any]] = {}
        self.phase_s: dict[str, float] = {}

    def record(self, name: str, ok: bool, **figures: Any) -> None:
        self.results[name] = {"ok": bool(ok), **figures}
        (log.info if ok else log.error)("%s: %s %s", name, "ok" if ok else "FAILED", figures)

    def run(self, name: str, step: Callable[[], Any]) -> Any:
        """Run one step; an exception fails that check and the run goes on."""
        start = time.perf_counter()
        try:
            return step()
        except Exception as exc:  # a failed step must not cost the other figures
            log.exception("%s raised", name)
            self.record(name, False, error=f"{type(exc).__name__}: {str(exc)[:300]}")
            return None
        finally:
            self.phase_s[name] = round(time.perf_counter() - start, 1)
            log.info("%s took %.1f s", name, self.phase_s[name])

    @property
    def failed(self) -> list[str]:
        return [n for n, r in self.results.items() if not r["ok"]]


def rel_diff(a: float, b: float) -> float:
    """``|a - b|`` relative to ``b`` (to 0.1 for losses near zero)."""
    return abs(a - b) / max(abs(b), 0.1)


# --------------------------------------------------------------------------- training


def build_gan(model: str, generator: str, ngf: int, size: int, device: Any, channels_last: bool,
              compile_: bool) -> tuple[Any, Any, Any]:
    """A model placed on ``device`` from seed 0 (the same weights on every device).

    At the checks' small sizes CUT's PatchNCE takes every location (its loss does not
    depend on their random order), so the CPU and CUDA losses are comparable.
    """
    import torch

    from geogan.models.gan import GAN_MODELS, GANSettings
    from geogan.models.patchnce import NUM_PATCHES
    from geogan.train import make_optimizers

    torch.manual_seed(0)
    patches = size * size if size <= 64 else NUM_PATCHES
    settings = GANSettings(generator=generator, ngf=ngf, ndf=ngf, nce_patches=patches)
    gan = GAN_MODELS[model](3, 3, settings)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    gan.networks.to(device=device, memory_format=fmt)
    opt_g, opt_d = make_optimizers(gan, 2e-4, 0.5, fused=device.type == "cuda")
    if compile_:
        gan.g_net.compile()
        for key in gan.networks:
            if key not in gan.generator_keys:
                gan.networks[key].compile()
    return gan, opt_g, opt_d


class Trainer:
    """A model from seed 0 on ``device`` with fixed images, stepped as ``geogan train`` does."""

    def __init__(self, model: str, generator: str, ngf: int, size: int, batch: int,
                 device: Any, precision: str, channels_last: bool, compile_: bool) -> None:
        import torch

        from geogan.train import autocast_context

        self.gan, self.opt_g, self.opt_d = build_gan(model, generator, ngf, size, device,
                                                     channels_last, compile_)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        rng = torch.Generator().manual_seed(1)
        self.a, self.b, self.probe = (
            (torch.rand((batch, 3, size, size), generator=rng) * 2 - 1)
            .to(device).contiguous(memory_format=fmt) for _ in range(3))
        self.scaler = torch.amp.GradScaler(device.type, enabled=False)
        self.amp = autocast_context(device, precision)

    def steps(self, n: int) -> list[dict[str, float]]:
        """``n`` optimisation steps; their losses (reading them waits for the device)."""
        from geogan.train import optimisation_step

        out = [optimisation_step(self.gan, self.gan.g_net, self.gan.d_net, self.opt_g,
                                 self.opt_d, self.scaler, self.amp, self.a, self.b)
               for _ in range(n)]
        return [{k: float(v.detach()) for k, v in o.items()} for o in out]

    def result(self, losses: list[dict[str, float]]) -> tuple:
        """``(losses, the generator's output on the probe (CPU, float32), the model)``."""
        import torch

        with torch.no_grad(), self.amp:
            fake = self.gan.networks[self.gan.generator_keys[0]](self.probe).float().cpu()
        return losses, fake, self.gan


def compare_steps(name: str, checks: Checks, ref: tuple, got: tuple, loss_tol: float,
                  mean_tol: float, max_tol: float) -> None:
    """Losses of the first step within ``loss_tol`` (relative), all finite; the generator's
    output within ``mean_tol`` / ``max_tol`` (mean / max absolute difference)."""
    import torch

    (ref_losses, ref_fake, _), (losses, fake, gan) = ref, got
    finite = all(math.isfinite(v) for step in losses for v in step.values())
    weights = all(bool(torch.isfinite(p).all()) for p in gan.networks.parameters())
    first = max(rel_diff(losses[0][k], ref_losses[0][k]) for k in ref_losses[0])
    diff = (fake - ref_fake).abs()
    same_shape = tuple(fake.shape) == tuple(ref_fake.shape)
    ok = (finite and weights and same_shape and first <= loss_tol
          and float(diff.mean()) <= mean_tol and float(diff.max()) <= max_tol)
    checks.record(name, ok, finite=finite and weights, same_shape=same_shape,
                  first_step_loss_rel_diff=round(first, 6),
                  output_mean_abs_diff=round(float(diff.mean()), 6),
                  output_max_abs_diff=round(float(diff.max()), 6))


def _tf32(on: bool) -> None:
    import torch

    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def train_check(plan: Plan, checks: Checks) -> None:
    """Each model, two steps: the CPU (fp32) vs CUDA fp32 vs CUDA bf16 + channels_last."""
    import torch

    cpu, dev = torch.device("cpu"), torch.device(plan.device)
    cuda = dev.type == "cuda"
    for model in MODELS:
        # pix2pix's U-Net needs 128 px at least; the CPU dry run uses a ResNet
        gen = "unet_128" if model == "pix2pix" and cuda else plan.generators[model]
        size = 128 if gen == "unet_128" else plan.check_size

        def run(device: Any, precision: str, channels_last: bool, _m: str = model,
                _g: str = gen, _s: int = size) -> tuple:
            trainer = Trainer(_m, _g, plan.check_ngf, _s, 2, device, precision, channels_last,
                              False)
            return trainer.result(trainer.steps(2))

        def check(_m: str = model, _run: Callable[..., tuple] = run) -> None:
            ref = _run(cpu, "fp32", False)
            matmul, conv = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
            _tf32(False)
            try:
                compare_steps(f"train_check.{_m}.fp32", checks, ref, _run(dev, "fp32", False),
                              1e-3, 5e-3, 5e-2)
            finally:
                torch.backends.cuda.matmul.allow_tf32 = matmul
                torch.backends.cudnn.allow_tf32 = conv
            precision = "bf16" if cuda else "fp32"
            compare_steps(f"train_check.{_m}.{precision}_channels_last", checks, ref,
                          _run(dev, precision, cuda), 5e-2, 5e-2, 0.5)

        checks.run(f"train_check.{model}", check)


def train_speed(plan: Plan, checks: Checks, model: str) -> float | None:
    """The reference networks at batch 16, bf16, channels_last, compiled: images/s.

    The compiled model's first step (which compiles) must match an eager model's."""
    import torch

    dev = torch.device(plan.device)
    cuda = dev.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")
    precision = "bf16" if cuda else "fp32"
    gen = plan.generators[model]
    args = (model, gen, plan.speed_ngf, plan.speed_size, plan.speed_batch, dev, precision, cuda)
    eager = Trainer(*args, False)
    ref = eager.result(eager.steps(1))
    del eager
    trainer = Trainer(*args, plan.compile)
    t0 = time.perf_counter()
    first = trainer.steps(1)
    compile_s = time.perf_counter() - t0
    compare_steps(f"train_speed.{model}.compiled_vs_eager", checks, ref, trainer.result(first),
                  5e-2, 5e-2, 0.5)
    trainer.steps(plan.speed_warmup)
    t0 = time.perf_counter()
    losses = trainer.steps(plan.speed_steps)
    elapsed = time.perf_counter() - t0
    rate = plan.speed_steps * plan.speed_batch / elapsed
    finite = all(math.isfinite(v) for step in losses for v in step.values())
    checks.record(f"train_speed.{model}", finite, images_per_s=round(rate, 2),
                  compile_s=round(compile_s, 1), generator=gen, batch=plan.speed_batch,
                  precision=precision, compile=plan.compile)
    return rate


# --------------------------------------------------------------------------- GPU busy


class BusySampler:
    """Samples the GPU's utilisation (percent) every ``every`` s in a background thread."""

    def __init__(self, index: int = 0, every: float = 0.2) -> None:
        self.index, self.every = index, every
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.source = self._pick_source()

    def _pick_source(self) -> str | None:
        import torch

        if not torch.cuda.is_available():
            return None
        try:
            torch.cuda.utilization(self.index)
            return "torch.cuda.utilization"
        except Exception:  # needs pynvml / amdsmi
            return "nvidia-smi" if shutil.which("nvidia-smi") else None

    def _read(self) -> float | None:
        import torch

        if self.source == "torch.cuda.utilization":
            return float(torch.cuda.utilization(self.index))
        done = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu",
                               "--format=csv,noheader,nounits", "-i", str(self.index)],
                              capture_output=True, text=True, timeout=5)
        text = done.stdout.strip()
        return float(text) if done.returncode == 0 and text else None

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                value = self._read()
            except Exception:  # a sampling hiccup is not a failed check
                value = None
            if value is not None:
                self.samples.append(value)

    def __enter__(self) -> BusySampler:
        if self.source is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    @property
    def fraction(self) -> float | None:
        return round(sum(self.samples) / len(self.samples) / 100, 3) if self.samples else None


# --------------------------------------------------------------------------- translation


def build_rasters(plan: Plan, work: Path) -> tuple[Path, Path]:
    """The big orthophoto and a crop of it (the mirrored sample), built in a child process
    so that their memory is not the translation's."""
    import multiprocessing

    import translate_speed

    big, crop = work / "ortho.tif", work / "crop.tif"
    ctx = multiprocessing.get_context("spawn")
    for path, px in ((big, plan.raster_px), (crop, plan.crop_px)):
        proc = ctx.Process(target=translate_speed.build_orthophoto, args=(str(path), px, px))
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            raise RuntimeError(f"building {path} failed")
    return big, crop


def compare_rasters(name: str, checks: Checks, ref: Path, got: Path) -> None:
    """Two translations of one raster: same grid and bands, pixels within a few levels."""
    import numpy as np
    import rasterio

    with rasterio.open(ref) as a, rasterio.open(got) as b:
        same = (a.shape, a.count, a.dtypes, a.crs, a.transform) == \
            (b.shape, b.count, b.dtypes, b.crs, b.transform)
        diff = np.abs(a.read().astype(np.int32) - b.read().astype(np.int32))
    far = float((diff > 16).mean())
    checks.record(name, same and float(diff.mean()) <= 2.0 and far <= 0.01, same_grid=same,
                  mean_abs_diff=round(float(diff.mean()), 4), fraction_off_by_16=round(far, 6))


def check_output(name: str, checks: Checks, src: Path, out: Path) -> None:
    """A complete raster on the input's grid, with detail in it (not a constant)."""
    import numpy as np
    import rasterio
    from rasterio.windows import Window

    from geogan.fileio import is_complete_raster

    complete = is_complete_raster(out)
    with rasterio.open(src) as a, rasterio.open(out) as b:
        same = (a.shape, a.crs, a.transform) == (b.shape, b.crs, b.transform)
        side = min(512, b.width, b.height)
        stds = [float(np.std(b.read(window=Window(x, y, side, side))))
                for x, y in ((0, 0), (b.width - side, b.height - side),
                             ((b.width - side) // 2, (b.height - side) // 2))]
    checks.record(name, complete and same and min(stds) > 0, complete=complete, same_grid=same,
                  min_window_std=round(min(stds), 3))


def translate_phase(plan: Plan, checks: Checks, work: Path) -> dict[str, Any]:
    """The crop on the device and the CPU, the big raster end to end, the generator alone."""
    import translate_speed

    from geogan.blend import AxisLayout
    from geogan.translate import TranslateConfig, translate_files

    big, crop = build_rasters(plan, work)
    ckpt = translate_speed.make_checkpoint(work / "model.safetensors", plan.translate_arch,
                                           plan.translate_ngf)
    device = TranslateConfig(device=plan.device, compile=plan.compile, overwrite=True)
    cpu = TranslateConfig(device="cpu", precision="fp32", overwrite=True)
    translate_files(ckpt, [crop], work / "crop_device.tif", device)  # also warms up compile
    translate_files(ckpt, [crop], work / "crop_cpu.tif", cpu)
    compare_rasters("translate.crop_vs_cpu", checks, work / "crop_cpu.tif",
                    work / "crop_device.tif")
    out = work / "translated.tif"
    with BusySampler() as busy:
        t0 = time.perf_counter()
        translate_files(ckpt, [big], out, device)
        e2e = time.perf_counter() - t0
    check_output("translate.end_to_end", checks, big, out)
    mpx = plan.raster_px ** 2 / 1e6
    side = AxisLayout(plan.raster_px, device.tile, device.overlap).count
    seconds, timed = translate_speed.model_only(ckpt, device, side * side,
                                                plan.generator_windows)
    figures = {"translate_mpx_s_end_to_end": round(mpx / e2e, 2),
               "translate_mpx_s_generator": round(mpx / seconds, 2),
               "translate_s": round(e2e, 1), "translate_raster_px": plan.raster_px,
               "translate_generator_windows_timed": timed,
               "gpu_busy_fraction": busy.fraction, "gpu_busy_source": busy.source,
               "gpu_busy_samples": len(busy.samples)}
    checks.record("translate.speed", True, **figures)
    for path in (out, big):
        path.unlink(missing_ok=True)
    return figures


# --------------------------------------------------------------------------- training loops


def write_chips(plan: Plan, work: Path) -> tuple[Path, Path]:
    """``plan.chips`` chips of each domain cut from the crop raster (no geopandas needed)."""
    import rasterio
    import translate_speed
    from rasterio.windows import Window
    from rasterio.windows import transform as window_transform

    src_path = work / "chips_source.tif"
    if not src_path.exists():
        translate_speed.build_orthophoto(str(src_path), 2 * plan.crop_px, 2 * plan.crop_px)
    size = plan.speed_size
    folders = (work / "chips_a", work / "chips_b")
    with rasterio.open(src_path) as src:
        per_row = src.width // size
        for d, folder in enumerate(folders):
            folder.mkdir(exist_ok=True)
            for i in range(plan.chips):
                k = 2 * i + d  # A and B from different places
                win = Window((k % per_row) * size, (k // per_row % per_row) * size, size, size)
                profile = {**src.profile, "width": size, "height": size, "tiled": False,
                           "compress": "none", "transform": window_transform(win, src.transform)}
                profile.pop("blockxsize", None)
                profile.pop("blockysize", None)
                with rasterio.open(folder / f"c{i:04d}.tif", "w", **profile) as dst:
                    dst.write(src.read(window=win))
    return folders


def check_run(name: str, checks: Checks, run: Path, steps: int, world: int,
              **figures: Any) -> None:
    """A finished run folder: the step reached, the processes, finite losses."""
    import csv

    from geogan.checkpoint import read_metadata

    meta = read_metadata(run)
    with open(run / "losses.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    finite = bool(rows) and all(math.isfinite(float(v)) for r in rows for k, v in r.items()
                                if k not in ("step", "epoch", "time") and v not in ("", None))
    world_ok = meta.get("training", {}).get("world_size", 1) == world
    checks.record(name, meta.get("step") == steps and finite and world_ok, step=meta.get("step"),
                  finite_losses=finite, world_size=world, **figures)


def train_loop(plan: Plan, checks: Checks, work: Path) -> None:
    """``geogan train`` itself: loader workers, channels_last, bf16 (auto), on chips."""
    from geogan.train import TrainConfig, train

    a, b = write_chips(plan, work)
    run = work / "run"
    config = TrainConfig(a=a, b=b, output=run, max_steps=plan.loop_steps,
                         batch_size=plan.speed_batch, crop=plan.speed_size, device=plan.device,
                         generator=plan.generators["cyclegan"], ngf=plan.speed_ngf,
                         ndf=plan.speed_ngf, log_every=1, preview_every=10**6,
                         save_every=10**6, overwrite=True)
    t0 = time.perf_counter()
    train(config)
    elapsed = time.perf_counter() - t0
    check_run("train_loop", checks, run, plan.loop_steps, 1,
              images_per_s=round(plan.loop_steps * plan.speed_batch / elapsed, 2),
              seconds=round(elapsed, 1))


def ddp_phase(plan: Plan, checks: Checks, work: Path, gpus: int) -> None:
    """The same training under torchrun on every GPU (NCCL)."""
    import os

    a, b = write_chips(plan, work)
    run = work / "run_ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           str(gpus), "-m", "geogan", "--progress", "none", "train", "--a", str(a), "--b",
           str(b), "-o", str(run), "--max-steps", str(plan.loop_steps), "--batch-size",
           str(plan.speed_batch), "--crop", str(plan.speed_size), "--device", "cuda",
           "--generator", plan.generators["cyclegan"], "--log-every", "1", "--overwrite"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=env)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        checks.record("ddp", False, returncode=proc.returncode, stderr=proc.stderr[-500:])
        return
    check_run("ddp", checks, run, plan.loop_steps, gpus, seconds=round(elapsed, 1),
              images_per_s=round(plan.loop_steps * plan.speed_batch * gpus / elapsed, 2))


# --------------------------------------------------------------------------- the run


def run_all(plan: Plan, checks: Checks, work: Path, skip: set[str]) -> dict[str, Any]:
    import torch

    cuda = plan.device == "cuda"
    figures: dict[str, Any] = {}
    peaks: dict[str, float] = {}

    def phase(name: str, step: Callable[[], Any]) -> Any:
        if name.split(".")[0] in skip:
            log.info("%s: skipped", name)
            return None
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        result = checks.run(name, step)
        if cuda:
            peaks[name] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        return result

    phase("train_check", lambda: train_check(plan, checks))
    figures["train_images_per_s"] = {
        m: round(r, 2) if r else None
        for m in MODELS for r in [phase(f"train_speed.{m}", lambda m=m: train_speed(
            plan, checks, m))]}
    figures.update(phase("translate", lambda: translate_phase(plan, checks, work)) or {})
    phase("train_loop", lambda: train_loop(plan, checks, work))
    gpus = torch.cuda.device_count() if cuda else 0
    if gpus >= 2:
        phase("ddp", lambda: ddp_phase(plan, checks, work, gpus))
    figures["train_loop_images_per_s"] = checks.results.get("train_loop", {}).get("images_per_s")
    figures["ddp"] = checks.results.get("ddp") if gpus >= 2 else f"skipped: {gpus} GPU(s)"
    figures["peak_gpu_mem_mb"] = max(peaks.values()) if peaks else None
    figures["phase_peak_gpu_mem_mb"] = peaks
    figures["gpus"] = gpus
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-dry-run", action="store_true",
                        help="run every step with tiny settings on the CPU (plumbing only)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the temporary folder goes (default: the system's)")
    parser.add_argument("--skip", action="append", default=[], choices=PHASES,
                        help="leave out a step (repeat for more)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="gpu_check: %(message)s")

    import torch

    if not args.cpu_dry_run and not torch.cuda.is_available():
        log.info("no CUDA device here (torch %s, CUDA build %s): nothing to check",
                 torch.__version__, torch.version.cuda)
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # translate_speed's helpers
    plan = Plan.dry() if args.cpu_dry_run else Plan()
    start = time.perf_counter()
    checks = Checks()
    work = Path(tempfile.mkdtemp(prefix="geogan-gpu-check-", dir=args.workdir))
    try:
        figures = run_all(plan, checks, work, set(args.skip))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cuda = plan.device == "cuda"
    result = {"benchmark": "gpu_check", "ok": not checks.failed, "failed": checks.failed,
              "device": torch.cuda.get_device_name(0) if cuda else "cpu (dry run)",
              "torch": torch.__version__, "cuda": torch.version.cuda, **figures,
              "elapsed_s": round(time.perf_counter() - start, 1), "phase_s": checks.phase_s,
              "checks": checks.results}
    print(json.dumps(result, default=str))
    return 0 if not checks.failed else 1


if __name__ == "__main__":
    sys.exit(main())
