"""Training speed of one full training step (CycleGAN by default), printed as one JSON line.

The step is exactly the one ``geogan train`` runs (:func:`geogan.train.optimisation_step`):
two generators, two PatchGANs, identity loss, image pools, Adam (fused on CUDA), in
the chosen precision, with channels_last on CUDA, on synthetic data already on the
device (so it measures the networks, not the data loader). Defaults are the paper's:
ResNet-9 generators with ngf 64, 70x70 PatchGANs with ndf 64, 256 x 256 crops.
``--model cut|fastcut`` times a CUT step instead (one generator, one PatchGAN, PatchNCE),
``--upsample resize`` the resize-convolution generators.

Printed: images/s (training pairs per second), ms/step, peak GPU memory (MB; null
on the CPU) and the settings.

Examples::

    python benchmarks/train_speed.py --batch-size 16 --precision bf16 --compile   # GPU
    python benchmarks/train_speed.py --batch-size 1 --precision fp32               # baseline
    python benchmarks/train_speed.py --device cpu --size 128 --ngf 16 \\
        --generator resnet_6blocks --steps 5 --warmup 1                             # CPU
"""

from __future__ import annotations

import argparse
import json
import time


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--precision", choices=["auto", "bf16", "fp16", "fp32"], default="auto")
    parser.add_argument("--compile", action="store_true", help="torch.compile the networks")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--size", type=int, default=256, help="crop side in px")
    parser.add_argument("--bands", type=int, default=3)
    parser.add_argument("--generator", default="resnet_9blocks")
    parser.add_argument("--model", default="cyclegan", choices=["cyclegan", "cut", "fastcut"])
    parser.add_argument("--upsample", default="deconv", choices=["deconv", "resize"])
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--ndf", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30, help="timed steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    args = parser.parse_args(argv)

    import torch

    from geogan.devices import resolve_device
    from geogan.models.gan import GAN_MODELS, GANSettings
    from geogan.train import (
        autocast_context,
        make_optimizers,
        optimisation_step,
        resolve_precision,
    )

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")
    torch.manual_seed(0)
    gan = GAN_MODELS[args.model](args.bands, args.bands, GANSettings(
        generator=args.generator, ngf=args.ngf, ndf=args.ndf, upsample=args.upsample))
    fmt = torch.channels_last if cuda else torch.contiguous_format
    gan.networks.to(device=device, memory_format=fmt)
    opt_g, opt_d = make_optimizers(gan, 2e-4, 0.5, fused=cuda)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    if args.compile:
        gan.g_net.compile()
        for key in gan.networks:
            if key not in gan.generator_keys:
                gan.networks[key].compile()
    amp = autocast_context(device, precision)
    shape = (args.batch_size, args.bands, args.size, args.size)
    real_a = (torch.rand(shape, device=device) * 2 - 1).contiguous(memory_format=fmt)
    real_b = (torch.rand(shape, device=device) * 2 - 1).contiguous(memory_format=fmt)

    def step() -> torch.Tensor:
        losses = optimisation_step(gan, gan.g_net, gan.d_net, opt_g, opt_d, scaler, amp,
                                   real_a, real_b)
        return losses["G_total"]

    t0 = time.perf_counter()
    for _ in range(args.warmup):
        step().item()  # includes compilation and cudnn autotuning
    warmup_s = time.perf_counter() - t0
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    final = float(loss.item())  # waits for the GPU
    if cuda:
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - t0
    result = {
        "benchmark": "train_speed",
        "images_per_s": round(args.steps * args.batch_size / elapsed, 3),
        "ms_per_step": round(1000 * elapsed / args.steps, 2),
        "peak_gpu_mem_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        if cuda else None,
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "cpu_threads": torch.get_num_threads(),
        "precision": precision, "compile": args.compile, "batch_size": args.batch_size,
        "size": args.size, "bands": args.bands, "model": args.model,
        "upsample": args.upsample, "generator": args.generator, "ngf": args.ngf,
        "ndf": args.ndf, "steps": args.steps, "warmup_s": round(warmup_s, 2),
        "final_G_total": round(final, 4), "torch": torch.__version__,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
