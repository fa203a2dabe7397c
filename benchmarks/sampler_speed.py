"""How fast random windows are read from rasters, beside the training step they feed.

Reads random ``--crop`` windows of the sample orthophotos (``geogan/sample_data/naip_2009.tif``
as A, ``naip_2020.tif`` as B, with ``--max-nodata 0.01 --min-std 1`` as the demo) through
the DataLoader ``geogan train`` builds, with 0, 1, 2 ... worker processes, and times
one full CycleGAN optimisation step on batches of the same shape (the demo's model:
ResNet-6 ngf 16, PatchGAN ndf 32). The loader keeps up when its windows/s exceed
``batch size / step time``.

Printed: one line per worker count (windows/s, i.e. A+B pairs per second, and ms per
batch), the step time, and a JSON line with everything. Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/sampler_speed.py              # CPU, the demo's settings
    python benchmarks/sampler_speed.py --device cuda --batch-size 16 --workers 0,2,4,8
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "geogan" / "sample_data"


def loader_rate(dataset, batch_size: int, workers: int, batches: int, pin: bool) -> float:
    """Windows per second the loader delivers once running (start-up excluded)."""
    import torch

    from geogan.datasets import EpochSampler

    class Endless(EpochSampler):
        def __len__(self) -> int:
            return 10**9

        def __iter__(self):
            epoch = 0
            while True:
                self.set_epoch(epoch)
                yield from super().__iter__()
                epoch += 1

    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=Endless(len(dataset), seed=0),
        num_workers=workers, pin_memory=pin, drop_last=True,
        prefetch_factor=4 if workers else None, persistent_workers=False)
    it = iter(loader)
    for _ in range(max(2, workers)):  # workers started and their first batches out
        next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    rate = batches * batch_size / (time.perf_counter() - start)
    del it
    return rate


def step_time(batch_size: int, crop: int, bands: int, device_name: str, steps: int,
              precision: str) -> float:
    """Seconds of one CycleGAN optimisation step (the demo's networks), synthetic data."""
    import torch

    from geogan.devices import resolve_device
    from geogan.models.gan import CycleGAN, GANSettings
    from geogan.train import (
        autocast_context,
        make_optimizers,
        optimisation_step,
        resolve_precision,
    )

    device = resolve_device(device_name)
    precision = resolve_precision(precision, device)
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    gan = CycleGAN(bands, bands, GANSettings(generator="resnet_6blocks", ngf=16, ndf=32))
    fmt = torch.channels_last if cuda else torch.contiguous_format
    gan.networks.to(device=device, memory_format=fmt)
    opt_g, opt_d = make_optimizers(gan, 2e-4, 0.5, fused=cuda)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    amp = autocast_context(device, precision)
    shape = (batch_size, bands, crop, crop)
    real_a = (torch.rand(shape, device=device) * 2 - 1).contiguous(memory_format=fmt)
    real_b = (torch.rand(shape, device=device) * 2 - 1).contiguous(memory_format=fmt)

    def step() -> None:
        losses = optimisation_step(gan, gan.g_net, gan.d_net, opt_g, opt_d, scaler, amp,
                                   real_a, real_b)
        float(losses["G_total"].detach())  # wait for the device

    step()
    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workers", default="0,1,2", help="worker counts to measure")
    parser.add_argument("--batches", type=int, default=60, help="timed batches per count")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps")
    parser.add_argument("--device", default="cpu", help="training step device: cpu, cuda")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--a", type=Path, default=DATA / "naip_2009.tif")
    parser.add_argument("--b", type=Path, default=DATA / "naip_2020.tif")
    args = parser.parse_args(argv)

    import torch

    from geogan.samplers import WindowConfig, open_inputs

    data = open_inputs("cyclegan", args.a, args.b, args.crop,
                       windows=WindowConfig(max_nodata=0.01, min_std=1.0))
    rates = {}
    for workers in (int(w) for w in args.workers.split(",")):
        rates[workers] = loader_rate(data.dataset, args.batch_size, workers, args.batches,
                                     pin=args.device.startswith("cuda"))
        print(f"sampler, {workers} worker(s): {rates[workers]:8.1f} windows/s "
              f"({1000 * args.batch_size / rates[workers]:7.1f} ms per batch of "
              f"{args.batch_size})", flush=True)
    step_s = step_time(args.batch_size, args.crop, data.a.bands, args.device, args.steps,
                       args.precision)
    need = args.batch_size / step_s
    print(f"training step ({args.device}, batch {args.batch_size}, crop {args.crop}): "
          f"{1000 * step_s:.1f} ms = {need:.1f} windows/s consumed")
    enough = [w for w, r in rates.items() if r >= need]
    print(f"the loader keeps up with {min(enough)} worker(s)" if enough else
          "the loader is slower than training at every worker count measured")
    result = {"crop": args.crop, "batch_size": args.batch_size, "device": args.device,
              "torch_threads": torch.get_num_threads(),
              "windows_per_s": {str(k): round(v, 1) for k, v in rates.items()},
              "step_ms": round(1000 * step_s, 1), "windows_per_s_needed": round(need, 1),
              "workers_needed": min(enough) if enough else None}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
