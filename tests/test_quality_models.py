"""Resize-convolution upsampling and CUT / FastCUT: networks, PatchNCE, training, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from conftest import GEOGRAPHIC, PROJECTED, make_checkpoint, train_until_cancelled
from test_train import make_chips, read_csv

from geogan.checkpoint import (
    load_checkpoint,
    load_generator,
    read_metadata,
    save_inference_checkpoint,
)
from geogan.contract.choices import UPSAMPLES
from geogan.errors import InputError
from geogan.models import build_generator, size_multiple
from geogan.models.gan import (
    CUT,
    GAN_MODELS,
    CUTGenerator,
    FastCUT,
    GANSettings,
    set_requires_grad,
)
from geogan.models.generators import ResizeConv2d
from geogan.models.patchnce import PatchSampleMLP, l2_normalise, patch_nce_loss
from geogan.train import TrainConfig, resume_config, train, validate_config

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent.parent
PRETRAINED = ROOT / "geogan" / "sample_data" / "pretrained" / "naip_2009_to_2020.safetensors"
TINY = {"crop": 32, "ngf": 8, "ndf": 8, "generator": "resnet_6blocks"}
SMALL = GANSettings(generator="resnet_6blocks", ngf=8, ndf=8)


def _count(net: torch.nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in net.modules())


def _checker(y: torch.Tensor) -> float:
    """Mean |x[2i,2j] - x[2i+1,2j] - x[2i,2j+1] + x[2i+1,2j+1]| / 4: the 2x2 checker energy."""
    y = y[..., : y.shape[-2] // 2 * 2, : y.shape[-1] // 2 * 2]
    c = y[..., 0::2, 0::2] - y[..., 1::2, 0::2] - y[..., 0::2, 1::2] + y[..., 1::2, 1::2]
    return float(c.abs().mean() / 4)


# -- upsampling ---------------------------------------------------------------------------

@pytest.mark.parametrize("arch,side,ups", [("resnet_6blocks", 36, 2), ("resnet_9blocks", 36, 2),
                                          ("unet_128", 128, 7), ("unet_256", 256, 8)])
def test_resize_upsampling_has_no_transposed_convolution(arch: str, side: int, ups: int) -> None:
    torch.manual_seed(0)
    deconv = build_generator(arch, in_channels=4, out_channels=3, ngf=4)
    resize = build_generator(arch, in_channels=4, out_channels=3, ngf=4, upsample="resize")
    assert _count(deconv, torch.nn.ConvTranspose2d) == ups and _count(deconv, ResizeConv2d) == 0
    assert _count(resize, torch.nn.ConvTranspose2d) == 0 and _count(resize, ResizeConv2d) == ups
    assert size_multiple(resize) == size_multiple(deconv)
    h = side if arch.startswith("unet") else 32  # ResNet: any multiple of 4, also non-square
    x = torch.rand(2, 4, h, side) * 2 - 1
    y = resize(x)
    assert y.shape == deconv(x).shape == (2, 3, h, side)
    assert y.abs().max() <= 1.0
    with pytest.raises(ValueError, match="deconv, resize"):
        build_generator(arch, upsample="pixelshuffle")
    assert UPSAMPLES == ("deconv", "resize")


def test_resize_upsampling_paints_no_checkerboard_on_a_flat_image() -> None:
    """Without norms a flat input stays flat inside the encoder (away from the zero-padded
    borders); only the upsampling can make a 2-pixel pattern of it. Transposed
    convolutions do, resize-convolutions do not."""
    x = torch.full((1, 3, 96, 96), 0.3)
    energy = {}
    for kind in UPSAMPLES:
        torch.manual_seed(0)
        g = build_generator("resnet_6blocks", ngf=8, norm="none", upsample=kind)
        with torch.no_grad():
            y = g(x)[..., 32:-32, 32:-32]
        energy[kind] = _checker(y)
        assert float(y.std()) > 0  # not a dead network
    assert energy["deconv"] > 0
    assert energy["resize"] < 1e-4 * energy["deconv"], energy  # measured: about 5e-7 x


def test_old_checkpoint_without_upsample_loads_as_deconv(tmp_path: Path) -> None:
    # written as before the choice existed: no "upsample" among the generator's arguments
    old = make_checkpoint(tmp_path / "old.safetensors", bands_a=4, bands_b=4, ngf=8, seed=3)
    meta = read_metadata(old)
    spec = meta["generators"]["a2b"]
    assert "upsample" not in spec["kwargs"]
    g = load_generator(old)
    assert _count(g.module, torch.nn.ConvTranspose2d) == 2
    assert _count(g.module, ResizeConv2d) == 0
    # the same weights in an explicitly deconv network give the same output, bit for bit
    explicit = build_generator(spec["arch"], **spec["kwargs"], upsample="deconv").eval()
    tensors, _ = load_checkpoint(old, prefix=spec["key"])
    explicit.load_state_dict({k[len(spec["key"]) + 1:]: v for k, v in tensors.items()})
    x = torch.rand(1, 4, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(g.module(x), explicit(x))
    # its weights do not fit a resize network: the choice is part of the architecture
    with pytest.raises(RuntimeError):
        build_generator(spec["arch"], **spec["kwargs"], upsample="resize").load_state_dict(
            {k[len(spec["key"]) + 1:]: v for k, v in tensors.items()})


def test_the_shipped_model_has_no_transposed_convolution() -> None:
    assert read_metadata(PRETRAINED)["generators"]["a2b"]["kwargs"]["upsample"] == "resize"
    g = load_generator(PRETRAINED)
    assert _count(g.module, torch.nn.ConvTranspose2d) == 0
    assert _count(g.module, ResizeConv2d) == 2
    assert PRETRAINED.stat().st_size < 10 * 2 ** 20


def test_a_stored_run_config_without_upsample_resumes_as_deconv(tmp_path: Path) -> None:
    fresh = TrainConfig(a=tmp_path, b=tmp_path, output=tmp_path)
    assert fresh.upsample == "resize"  # new runs
    stored = fresh.to_json()
    del stored["upsample"]  # as written before the choice existed
    assert TrainConfig.from_json(stored).upsample == "deconv"


def test_new_checkpoints_name_their_upsampling(tmp_path: Path, make_raster) -> None:
    a, b = make_chips(make_raster, "a", 2), make_chips(make_raster, "b", 2, seed=9)
    out = train(TrainConfig(a=a, b=b, output=tmp_path / "run", max_steps=1, **TINY))
    gens = read_metadata(out)["generators"]
    assert {d["kwargs"]["upsample"] for d in gens.values()} == {"resize"}  # the default
    assert _count(load_generator(out, "b2a").module, torch.nn.ConvTranspose2d) == 0
    deconv = train(TrainConfig(a=a, b=b, output=tmp_path / "run_deconv", max_steps=1,
                               upsample="deconv", **TINY))
    assert read_metadata(deconv)["generators"]["a2b"]["kwargs"]["upsample"] == "deconv"
    assert _count(load_generator(deconv).module, torch.nn.ConvTranspose2d) == 2


def test_bad_upsample_and_cut_options_are_one_line_errors(tmp_path: Path) -> None:
    base = {"a": tmp_path, "b": tmp_path, "output": tmp_path / "run"}
    with pytest.raises(InputError, match="unknown --upsample 'nearest'; choose one of deconv"):
        validate_config(TrainConfig(**base, upsample="nearest"))
    with pytest.raises(InputError, match="--lambda-nce must be positive"):
        validate_config(TrainConfig(**base, model="cut", lambda_nce=0.0))
    with pytest.raises(InputError, match="--nce-patches must be positive"):
        validate_config(TrainConfig(**base, model="cut", nce_patches=0))


# -- PatchNCE -----------------------------------------------------------------------------

def test_patch_nce_is_lower_for_matching_patches_than_for_shuffled_ones() -> None:
    torch.manual_seed(0)
    batch, p, c = 2, 64, 32
    k = l2_normalise(torch.randn(batch * p, c))
    same = patch_nce_loss(k.clone(), k, batch)
    near = patch_nce_loss(l2_normalise(k + 0.1 * torch.randn_like(k)), k, batch)
    perm = torch.cat([torch.randperm(p) + i * p for i in range(batch)])
    shuffled = patch_nce_loss(k[perm], k, batch)
    assert same < near < shuffled
    assert shuffled > np.log(p) - 1  # no better than chance among the patches of an image
    assert same < 0.01  # the positive logit 1/tau dwarfs the negatives
    # negatives come from the same image only: the loss of a batch is the mean of the
    # losses of its images taken alone
    q = l2_normalise(k + 0.5 * torch.randn_like(k))
    alone = [patch_nce_loss(q[i * p:(i + 1) * p], k[i * p:(i + 1) * p], 1) for i in range(batch)]
    torch.testing.assert_close(patch_nce_loss(q, k, batch), torch.stack(alone).mean())
    assert not torch.allclose(patch_nce_loss(q, k, 1), patch_nce_loss(q, k, batch))
    with pytest.raises(ValueError, match="do not split"):
        patch_nce_loss(k[:-1], k[:-1], batch)


def test_patch_head_samples_the_same_places_of_two_images() -> None:
    torch.manual_seed(0)
    head = PatchSampleMLP([3, 8], num_patches=10)
    f1 = [torch.rand(2, 3, 8, 8), torch.rand(2, 8, 2, 2)]  # 64 and 4 locations
    q, ids = head(f1)
    assert [t.shape for t in q] == [(20, 256), (8, 256)]  # P = min(10, H * W) per image
    torch.testing.assert_close(q[0].norm(dim=1), torch.ones(20))
    again, ids2 = head(f1, ids)
    assert all(torch.equal(a, b) for a, b in zip(q, again, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(ids, ids2, strict=True))
    with pytest.raises(ValueError, match="2 layers"):
        head(f1[:1])


@pytest.mark.parametrize("arch", ["resnet_6blocks", "resnet_9blocks", "unet_128"])
def test_encoder_features_match_the_announced_channels(arch: str) -> None:
    g = build_generator(arch, in_channels=4, out_channels=3, ngf=4)
    x = torch.rand(1, 4, 128, 128)
    feats = g.encode(x)
    assert tuple(f.shape[1] for f in feats) == g.nce_channels
    assert len(feats) == 5
    assert torch.equal(feats[0], x)  # the input pixels come first
    assert feats[1].shape[-1] == 64  # first downsampling


def test_cut_gradients_reach_the_generator_and_the_head_not_the_discriminator() -> None:
    torch.manual_seed(0)
    gan = CUT(3, 3, SMALL)
    a, b = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    set_requires_grad(gan.d_net, False)
    total, losses, fakes = gan.generator_step(gan.g_net, a, b)
    total.backward()
    for key in ("G_A2B", "H"):
        for name, p in gan.networks[key].named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{key}.{name}"
    assert all(p.grad is None for p in gan.networks["D"].parameters())
    assert set(losses) == set(CUT.loss_names) - {"D"}
    torch.testing.assert_close(losses["G_total"],
                               losses["G_gan"] + 0.5 * (losses["NCE"] + losses["NCE_Y"]))
    assert fakes["fake_b"].shape == b.shape and not fakes["fake_b"].requires_grad
    # the head alone also gets a gradient from PatchNCE (the keys are constants)
    gan.networks.zero_grad()
    out = gan.g_net(a, b, identity=False, flipped=False)
    out["nce"].backward()
    assert all(p.grad.abs().sum() > 0 for p in gan.networks["H"].parameters())


def test_batched_cut_forward_equals_separate_calls() -> None:
    torch.manual_seed(0)
    g = build_generator("resnet_6blocks", in_channels=3, out_channels=3, ngf=8)
    head = PatchSampleMLP(g.nce_channels, num_patches=32)
    a, b = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    outs = []
    for batched in (True, False):
        torch.manual_seed(5)  # the same sampled locations
        outs.append(CUTGenerator(g, head, batched)(a, b, identity=True, flipped=True))
    assert set(outs[0]) == {"fake_b", "idt_b", "nce", "nce_y"}
    for key in outs[0]:
        torch.testing.assert_close(outs[0][key], outs[1][key], atol=1e-5, rtol=1e-5)


def test_fastcut_settings_and_one_step_moves_every_weight() -> None:
    torch.manual_seed(0)
    fast, cut = FastCUT(4, 4, SMALL), CUT(4, 3, SMALL)
    assert (fast.lambda_nce, fast.identity, fast.flip_equivariance) == (10.0, False, True)
    assert (cut.lambda_nce, cut.identity) == (1.0, False)  # no G(b) ~ b between 4 and 3 bands
    assert CUT(3, 3, GANSettings(lambda_nce=2.5, **{"generator": "resnet_6blocks",
                                                    "ngf": 8, "ndf": 8})).lambda_nce == 2.5
    assert {"cut", "fastcut"} <= set(GAN_MODELS)
    a, b = torch.rand(2, 4, 32, 32) * 2 - 1, torch.rand(2, 4, 32, 32) * 2 - 1
    before = {k: {n: v.clone() for n, v in net.state_dict().items()}
              for k, net in fast.networks.items()}
    opt_g = torch.optim.Adam([p for k in fast.generator_keys
                              for p in fast.networks[k].parameters()], lr=2e-4)
    opt_d = torch.optim.Adam(fast.networks["D"].parameters(), lr=2e-4)
    set_requires_grad(fast.d_net, False)
    total, losses, fakes = fast.generator_step(fast.g_net, a, b)
    assert losses["NCE_Y"].item() == 0.0 and losses["NCE"].item() > 0
    total.backward()
    opt_g.step()
    set_requires_grad(fast.d_net, True)
    d, _ = fast.discriminator_step(fast.d_net, a, b, fakes)
    d.backward()
    opt_d.step()
    for key, net in fast.networks.items():
        for n, v in net.state_dict().items():
            assert not torch.equal(before[key][n], v), f"{key}.{n} did not move"


# -- training, checkpoints, resume, translation -------------------------------------------

def test_short_cut_training_lowers_its_patch_nce_loss(tmp_path: Path, make_raster) -> None:
    a = make_chips(make_raster, "a", 8)
    b = make_chips(make_raster, "b", 8, seed=40)
    out = tmp_path / "run"
    train(TrainConfig(a=a, b=b, output=out, model="cut", max_steps=60, batch_size=2,
                      log_every=10, preview_every=60, save_every=60, upsample="resize", **TINY))
    rows = read_csv(out / "losses.csv")
    assert len(rows) == 6
    nce = [r["NCE"] for r in rows]
    assert nce[-1] < 0.7 * nce[0], nce  # measured over seeds 0-2: 4.9 -> 2.0-2.2 (0.42-0.45)
    assert all(np.isfinite(r["D"]) and np.isfinite(r["G_gan"]) for r in rows)
    assert (out / "previews" / "step_0000060.png").is_file()


def test_cut_checkpoint_holds_one_generator_and_translates(tmp_path: Path, make_raster) -> None:
    a = make_chips(make_raster, "a", 3, count=4, nodata=0)
    b = make_chips(make_raster, "b", 3, count=4, seed=20, nodata=0)
    run = tmp_path / "run"
    path = train(TrainConfig(a=a, b=b, output=run, model="fastcut", max_steps=2,
                             upsample="resize", **TINY))
    meta = read_metadata(path)
    assert meta["model"] == "fastcut"
    assert list(meta["generators"]) == ["a2b"] and list(meta["discriminators"]) == ["D"]
    assert meta["generators"]["a2b"]["kwargs"]["upsample"] == "resize"
    tensors, _ = load_checkpoint(path)
    assert {k.split(".")[0] for k in tensors} == {"G_A2B", "H", "D"}
    g = load_generator(path)
    with pytest.raises(Exception, match="no 'b2a' generator"):
        load_generator(path, "b2a")
    small = save_inference_checkpoint(path, tmp_path / "cut_a2b.safetensors")
    assert {k.split(".")[0] for k in load_checkpoint(small)[0]} == {"G_A2B"}
    x = torch.rand(1, 4, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(g.module(x), load_generator(small).module(x))

    from geogan.translate import TranslateConfig, translate_files

    for crs in (PROJECTED, GEOGRAPHIC):
        src = make_raster(f"in_{crs[-4:]}.tif", 37, 29, count=4, crs=crs, nodata=0,
                          nodata_box=(0, 5, 0, 9))
        dst = translate_files(small, [src], tmp_path / f"out_{crs[-4:]}.tif",
                              TranslateConfig(tile=32, overlap=8))[0]
        with rasterio.open(src) as s, rasterio.open(dst) as d:
            assert (d.crs, d.transform, d.width, d.height, d.count) == (
                s.crs, s.transform, s.width, s.height, 4)
            np.testing.assert_array_equal(s.dataset_mask(), d.dataset_mask())
            assert d.read(1)[s.dataset_mask() > 0].std() > 0


def test_cut_resume_continues_exactly(tmp_path: Path, make_raster) -> None:
    a = make_chips(make_raster, "a", 6)
    b = make_chips(make_raster, "b", 5, seed=30)
    cfg = {"a": a, "b": b, "model": "fastcut", "max_steps": 6, "batch_size": 2,
           "log_every": 1, "preview_every": 100, "save_every": 100, "nce_patches": 16,
           "upsample": "resize", **TINY}
    train(TrainConfig(output=tmp_path / "straight", **cfg))
    stopped = tmp_path / "stopped"
    train_until_cancelled(TrainConfig(output=stopped, **cfg))
    assert read_metadata(stopped)["step"] == 2
    resumed = resume_config(stopped)
    assert (resumed.model, resumed.upsample, resumed.nce_patches) == ("fastcut", "resize", 16)
    train(resumed)
    ref, got = load_checkpoint(tmp_path / "straight")[0], load_checkpoint(stopped)[0]
    assert ref.keys() == got.keys() and any(k.startswith("H.") for k in ref)
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=0, atol=1e-6, msg=k)
    rows_ref = read_csv(tmp_path / "straight" / "losses.csv")
    rows = read_csv(stopped / "losses.csv")
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    for r0, r1 in zip(rows_ref, rows, strict=True):
        assert r1["NCE"] == pytest.approx(r0["NCE"], abs=1e-5)
