"""Networks, losses, image pool and single training steps of CycleGAN and pix2pix (CPU)."""

from __future__ import annotations

import math

import pytest
import torch

from geogan.models import (
    DISCRIMINATORS,
    GENERATORS,
    GANLoss,
    build_discriminator,
    build_generator,
    size_multiple,
)
from geogan.models.discriminators import patchgan_receptive_field
from geogan.models.gan import CycleGAN, CycleGANGenerators, GANSettings, Pix2Pix, set_requires_grad
from geogan.models.generators import InstanceNorm2d
from geogan.models.image_pool import ImagePool

torch.set_num_threads(1)


def test_registries_hold_the_paper_architectures() -> None:
    assert {"resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128"} <= set(GENERATORS)
    assert {"patchgan", "pixel"} <= set(DISCRIMINATORS)
    with pytest.raises(KeyError):
        build_generator("resnet_7blocks")
    with pytest.raises(KeyError):
        build_discriminator("nope")


@pytest.mark.parametrize("c_in,c_out", [(3, 3), (4, 3), (1, 4)])
@pytest.mark.parametrize("arch", ["resnet_9blocks", "resnet_6blocks"])
def test_resnet_generator_shapes_and_range(arch: str, c_in: int, c_out: int) -> None:
    torch.manual_seed(0)
    g = build_generator(arch, in_channels=c_in, out_channels=c_out, ngf=8)
    y = g(torch.rand(2, c_in, 32, 36) * 2 - 1)
    assert y.shape == (2, c_out, 32, 36)
    assert y.abs().max() <= 1.0
    assert size_multiple(g) == 4
    n_blocks = sum(type(m).__name__ == "ResnetBlock" for m in g.modules())
    assert n_blocks == int(arch.split("_")[1][0])


@pytest.mark.parametrize("arch,side", [("unet_128", 128), ("unet_256", 256)])
def test_unet_generator_shapes(arch: str, side: int) -> None:
    g = build_generator(arch, in_channels=4, out_channels=3, ngf=4, use_dropout=True)
    assert size_multiple(g) == side
    y = g(torch.zeros(1, 4, side, side))
    assert y.shape == (1, 3, side, side)
    # dropout is the pix2pix noise: on in training, off in eval
    x = torch.rand(1, 4, side, side)
    assert not torch.equal(g(x), g(x))
    g.eval()
    assert torch.equal(g(x), g(x))


def test_unet_skip_connections_carry_the_input() -> None:
    """The outermost decoder level sees the first encoder output: output depends on fine detail."""
    torch.manual_seed(0)
    g = build_generator("unet_128", in_channels=1, out_channels=1, ngf=4).eval()
    x = torch.zeros(1, 1, 128, 128)
    x2 = x.clone()
    x2[0, 0, 10, 10] = 1.0
    diff = (g(x2) - g(x)).abs()[0, 0]
    assert diff[8:13, 8:13].max() > 0  # a one-pixel change shows up at its own place


def test_patchgan_is_70x70_and_outputs_a_map() -> None:
    assert patchgan_receptive_field(3) == 70
    assert patchgan_receptive_field(1) == 16
    d = build_discriminator("patchgan", in_channels=7, ndf=8, n_layers=3)
    assert d(torch.zeros(2, 7, 64, 64)).shape == (2, 1, 6, 6)
    p = build_discriminator("pixel", in_channels=3, ndf=8)
    assert p(torch.zeros(1, 3, 16, 16)).shape == (1, 1, 16, 16)


def test_weights_initialised_as_in_the_papers() -> None:
    torch.manual_seed(0)
    g = build_generator("resnet_6blocks", ngf=16)
    w = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(w.std().item() - 0.02) < 0.002
    assert abs(w.mean().item()) < 0.002


def test_gan_losses() -> None:
    ls, van = GANLoss("lsgan"), GANLoss("vanilla")
    ones = torch.ones(2, 1, 3, 3)
    assert ls(ones, True).item() == 0.0
    assert ls(ones, False).item() == 1.0
    assert van(torch.zeros(1, 1, 4, 4), True).item() == pytest.approx(math.log(2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert ls(ones.bfloat16(), True).dtype == torch.float32
    with pytest.raises(ValueError):
        GANLoss("wgan")


def test_instance_norm_runs_in_float32_under_autocast() -> None:
    x = (torch.randn(2, 8, 16, 16) * 3 + 100).bfloat16()  # large mean, small spread
    norm = InstanceNorm2d(8)
    ref = norm(x.float())  # the same inputs, normalised in float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = norm(x)
    assert low.dtype == torch.bfloat16  # hands bf16 on to the next convolution
    # only the final rounding to bf16 differs (|y| < 4 -> error < 2^-8 * 4)
    assert (low.float() - ref).abs().max() <= 4 * 2 ** -8


def test_image_pool_history_and_exact_state() -> None:
    pool = ImagePool(size=3, seed=1)
    first = torch.arange(3.0).view(3, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: returned as they come
    assert len(pool) == 3
    state = {k: v.clone() for k, v in pool.state_tensors("p").items()}
    outs = [pool.query(torch.full((4, 1, 1, 1), 10.0 + i)) for i in range(5)]
    seen = torch.cat(outs).flatten().tolist()
    assert any(v < 10 for v in seen) and any(v >= 10 for v in seen)  # old and new fakes mix
    again = ImagePool(size=3, seed=99)
    again.load_state_tensors(state, "p")
    outs2 = [again.query(torch.full((4, 1, 1, 1), 10.0 + i)) for i in range(5)]
    assert all(torch.equal(a, b) for a, b in zip(outs, outs2, strict=True))
    assert torch.equal(ImagePool(size=0).query(first), first)


def _weights(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _one_step(gan, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
    """One G step with D frozen, then one D step, as the training loop does."""
    g_params = [p for k in gan.generator_keys for p in gan.networks[k].parameters()]
    d_params = [p for k, n in gan.networks.items() if k not in gan.generator_keys
                for p in n.parameters()]
    opt_g = torch.optim.Adam(g_params, lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d_params, lr=2e-4, betas=(0.5, 0.999))
    set_requires_grad(gan.d_net, False)
    g_total, g_losses, fakes = gan.generator_step(gan.g_net, a, b)
    g_total.backward()
    assert all(p.grad is None for p in d_params)  # D frozen during the G step
    opt_g.step()
    set_requires_grad(gan.d_net, True)
    d_total, d_losses = gan.discriminator_step(gan.d_net, a, b, fakes)
    d_total.backward()
    opt_d.step()
    return {**g_losses, **d_losses}


@pytest.mark.parametrize("c_in,c_out", [(3, 3), (4, 3)])
def test_one_cyclegan_step_is_finite_and_changes_all_weights(c_in: int, c_out: int) -> None:
    torch.manual_seed(0)
    gan = CycleGAN(c_in, c_out, GANSettings(generator="resnet_6blocks", ngf=8, ndf=8))
    before = {k: _weights(n) for k, n in gan.networks.items()}
    a, b = torch.rand(2, c_in, 32, 32) * 2 - 1, torch.rand(2, c_out, 32, 32) * 2 - 1
    losses = _one_step(gan, a, b)
    assert set(losses) == set(gan.loss_names)
    assert all(torch.isfinite(v) for v in losses.values())
    assert (losses["idt_A"].item() > 0) == (c_in == c_out)  # identity only for equal bands
    for key, net in gan.networks.items():
        changed = [not torch.equal(before[key][k], v) for k, v in net.state_dict().items()]
        assert all(changed), f"{key} has weights the step did not move"
    fake_b = gan.networks["G_A2B"](a)
    assert fake_b.shape == (2, c_out, 32, 32)
    assert gan.networks["G_B2A"](fake_b).shape == (2, c_in, 32, 32)


@pytest.mark.parametrize("c_in,c_out", [(3, 3), (4, 3)])
def test_one_pix2pix_step_is_finite_and_changes_all_weights(c_in: int, c_out: int) -> None:
    torch.manual_seed(0)
    gan = Pix2Pix(c_in, c_out, GANSettings(generator="resnet_6blocks", ngf=8, ndf=8))
    before = {k: _weights(n) for k, n in gan.networks.items()}
    a, b = torch.rand(2, c_in, 32, 32) * 2 - 1, torch.rand(2, c_out, 32, 32) * 2 - 1
    losses = _one_step(gan, a, b)
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["G_L1"].item() > 0
    assert gan.networks["D"].model[0].in_channels == c_in + c_out  # conditional D(x, y)
    for key, net in gan.networks.items():
        assert all(not torch.equal(before[key][k], v) for k, v in net.state_dict().items())
    assert gan.networks["G_A2B"](a).shape == (2, c_out, 32, 32)


def test_batched_cyclegan_forward_equals_separate_calls() -> None:
    torch.manual_seed(0)
    g1 = build_generator("resnet_6blocks", in_channels=3, out_channels=3, ngf=8)
    g2 = build_generator("resnet_6blocks", in_channels=3, out_channels=3, ngf=8)
    a, b = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    batched = CycleGANGenerators(g1, g2, batched=True)(a, b, identity=True)
    single = CycleGANGenerators(g1, g2, batched=False)(a, b, identity=True)
    assert set(batched) == set(single) == {"fake_a", "fake_b", "rec_a", "rec_b", "idt_a",
                                           "idt_b"}
    for k in batched:
        torch.testing.assert_close(batched[k], single[k], atol=1e-5, rtol=1e-5)
