"""pix2pixHD: its networks' shapes, feature matching by hand, training, resume, translate,
ONNX, torchrun and the perceptual loss that is on only with a VGG19 weights file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from conftest import cli_error, make_raster_array, run_cli, run_torchrun, train_until_cancelled
from test_train import read_csv

from geogan.checkpoint import load_checkpoint, load_generator, read_metadata
from geogan.contract.layouts import Pairing
from geogan.errors import InputError
from geogan.models import build_generator
from geogan.models.base import GANSettings
from geogan.models.hd_networks import LocalEnhancer, feature_matching_loss
from geogan.models.pix2pixhd import PERCEPTUAL_OFF, Pix2PixHD
from geogan.models.registry import FAMILIES, build_registry, paired_models
from geogan.train import TrainConfig, resume_config, train

torch.set_num_threads(1)

#: Small enough for the CPU: 64 px crops (the generator's smallest), two D scales.
TINY = {"crop": 64, "ngf": 8, "ndf": 8, "num_d": 2}
TINY_CLI = ["--crop", "64", "--ngf", "8", "--ndf", "8", "--num-d", "2"]


def make_pairs(make_raster, n: int, size: int = 64) -> Path:
    """Chips pairs/A/cI.tif and pairs/B/cI.tif with B = 255 - A, bands reversed."""
    for i in range(n):
        a = make_raster_array(size, size, 3, "uint8", seed=i)
        make_raster(f"pairs/A/c{i}.tif", data=a)
        path = make_raster(f"pairs/B/c{i}.tif", data=255 - a[::-1])
    return path.parent.parent


# -- networks ------------------------------------------------------------------------------

@pytest.mark.parametrize(("arch", "kwargs", "multiple", "sizes"), [
    ("pix2pixhd", {}, 32, [(64, 64), (96, 64), (64, 128)]),
    ("pix2pixhd", {"n_downsample_global": 2, "upsample": "deconv"}, 8, [(16, 16), (24, 40)]),
    ("pix2pixhd_global", {}, 16, [(32, 32), (48, 80)]),
    ("pix2pixhd_global", {"n_downsampling": 3, "upsample": "resize"}, 8, [(16, 24)]),
])
def test_generators_keep_the_shape_at_multiples_of_their_size_multiple(
        arch: str, kwargs: dict, multiple: int, sizes: list[tuple[int, int]]) -> None:
    g = build_generator(arch, in_channels=4, out_channels=2, ngf=4, **kwargs)
    assert g.size_multiple == multiple and g.min_size == 2 * multiple
    for h, w in sizes:
        with torch.no_grad():
            y = g(torch.rand(2, 4, h, w) * 2 - 1)
        assert y.shape == (2, 2, h, w)
        assert float(y.abs().max()) <= 1.0  # tanh


def test_local_enhancer_adds_the_global_features_at_half_resolution() -> None:
    g = LocalEnhancer(3, 3, ngf=8)
    seen: list[tuple[int, ...]] = []
    g.global_net.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
    g(torch.zeros(1, 3, 64, 96))
    assert seen == [(1, 8, 32, 48)]  # G1: ngf filters on the input downsampled x2
    assert g.local_down[0].out_channels == 4  # G2: half of G1's width


def test_feature_matching_loss_against_a_hand_computation() -> None:
    """Two scales, three activations and a prediction each: sum of 4/3 * 1/2 * mean |f - r|;
    the predictions are left out."""
    def const(v: float, shape: tuple[int, ...] = (1, 2, 3, 3)) -> torch.Tensor:
        return torch.full(shape, v)

    fake = [[const(1.0), const(2.0), const(0.5, (1, 4, 2, 2)), const(9.0)],
            [const(0.0), const(-1.0), const(3.0, (1, 4, 1, 1)), const(-9.0)]]
    real = [[const(0.0), const(0.0), const(1.5, (1, 4, 2, 2)), const(0.0)],
            [const(0.25), const(1.0), const(2.0, (1, 4, 1, 1)), const(0.0)]]
    hand = 4 / 3 * 1 / 2 * ((1 + 2 + 1) + (0.25 + 2 + 1))
    assert float(feature_matching_loss(fake, real)) == pytest.approx(hand, rel=1e-6)
    # the real activations are constants of the loss
    f = const(1.0).requires_grad_()
    r = const(0.0).requires_grad_()
    feature_matching_loss([[f, const(0.0)]], [[r, const(0.0)]]).backward()
    assert f.grad is not None and r.grad is None


def test_generator_step_weighs_feature_matching_by_lambda_feat() -> None:
    torch.manual_seed(0)
    a, b = torch.rand(2, 3, 96, 96) * 2 - 1, torch.rand(2, 3, 96, 96) * 2 - 1
    losses = {}
    for lam in (10.0, 2.5):
        torch.manual_seed(1)
        model = Pix2PixHD(3, 3, GANSettings(generator="pix2pixhd", ngf=4, ndf=4, num_d=3,
                                            lambda_feat=lam))  # 96 px: D2 sees 24 px
        _, parts, _ = model.generator_step(model.g_net, a, b)
        losses[lam] = {k: v.detach() for k, v in parts.items()}
    assert list(model.networks) == ["G_A2B", "D0", "D1", "D2"]
    assert float(losses[10.0]["G_feat"]) == pytest.approx(4 * float(losses[2.5]["G_feat"]),
                                                          rel=1e-5)
    assert float(losses[10.0]["G_vgg"]) == 0.0  # no VGG weights: no perceptual loss
    assert float(losses[10.0]["G_gan"]) == pytest.approx(float(losses[2.5]["G_gan"]), rel=1e-6)


def test_the_registry_accepts_the_family() -> None:
    assert FAMILIES["pix2pixhd"] is Pix2PixHD
    assert build_registry([Pix2PixHD]) == {"pix2pixhd": Pix2PixHD}
    assert Pix2PixHD.pairing is Pairing.PAIRED
    assert "pix2pixhd" in paired_models()


# -- training ------------------------------------------------------------------------------

def test_short_training_lowers_the_loss_and_records_no_perceptual_loss(
        tmp_path: Path, make_raster) -> None:
    pairs = make_pairs(make_raster, 4)
    out = tmp_path / "run"
    train(TrainConfig(a=pairs, b=None, output=out, model="pix2pixhd", max_steps=60,
                      batch_size=4, log_every=5, preview_every=100, save_every=100, **TINY))
    rows = read_csv(out / "losses.csv")
    feat = [r["G_feat"] for r in rows]
    assert sum(feat[-2:]) < 0.8 * sum(feat[:2]), feat  # measured: 10.3, 9.3 ... 6.4, 6.3
    assert all(r["G_vgg"] == 0 for r in rows)
    meta = read_metadata(out)
    assert meta["model"] == "pix2pixhd"
    assert meta["training"]["perceptual_loss"] == PERCEPTUAL_OFF == "off (no weights given)"
    assert (meta["training"]["num_d"], meta["training"]["lambda_feat"]) == (2, 10.0)
    assert sorted(meta["discriminators"]) == ["D0", "D1"]
    assert meta["size_multiple"] == 32
    # the trained generator maps a chip closer to its target than the untrained one did
    g = load_generator(out)
    a = make_raster_array(64, 64, 3, "uint8", seed=1)
    target = (255 - a[::-1]).astype(float)
    x = torch.from_numpy(g.in_norm.to_model(a))[None]
    trained = g.out_norm.from_model(g.module(x).detach().numpy()[0]).astype(float)
    torch.manual_seed(0)
    fresh = build_generator("pix2pixhd", **meta["generators"]["a2b"]["kwargs"])
    untrained = g.out_norm.from_model(fresh(x).detach().numpy()[0]).astype(float)
    assert np.abs(trained - target).mean() < 0.8 * np.abs(untrained - target).mean()


def test_resume_continues_bit_exactly(tmp_path: Path, make_raster) -> None:
    pairs = make_pairs(make_raster, 3)
    cfg = {"a": pairs, "b": None, "model": "pix2pixhd", "max_steps": 4, "batch_size": 1,
           "log_every": 1, "preview_every": 100, "save_every": 100, **TINY}
    train(TrainConfig(output=tmp_path / "straight", **cfg))
    stopped = tmp_path / "stopped"
    train_until_cancelled(TrainConfig(output=stopped, **cfg))
    assert read_metadata(stopped)["step"] == 2
    train(resume_config(stopped))
    assert read_metadata(stopped)["step"] == 4
    for name in ("model.safetensors", "train_state.safetensors"):
        ref = load_checkpoint(tmp_path / "straight" / name)[0]
        got = load_checkpoint(stopped / name)[0]
        assert ref.keys() == got.keys()
        for k in ref:
            assert torch.equal(got[k], ref[k]), k
    rows_ref = read_csv(tmp_path / "straight" / "losses.csv")
    rows = read_csv(stopped / "losses.csv")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for r0, r1 in zip(rows_ref, rows, strict=True):
        assert (r1["G_total"], r1["D"]) == (r0["G_total"], r0["D"])


def test_cli_refuses_a_crop_too_small_for_the_coarsest_discriminator(tmp_path: Path,
                                                                    make_raster) -> None:
    pairs = make_pairs(make_raster, 1)
    res = run_cli("train", "--model", "pix2pixhd", "--a", pairs, "-o", tmp_path / "run",
                  "--crop", "64", "--ngf", "8", "--max-steps", "1")
    assert cli_error(res) == ("Error: --crop 64 is too small for generator pix2pixhd and "
                              "discriminator patchgan (3 layers) at 4x coarser scale; "
                              "use at least 96, a multiple of 32")
    assert not (tmp_path / "run").exists()


def test_cli_trains_from_rasters_and_translate_keeps_the_grid(tmp_path: Path,
                                                              make_raster) -> None:
    a = make_raster("ra/y2014.tif", width=96, height=80, seed=1)
    b = make_raster("rb/y2020.tif", width=96, height=80, seed=2)
    run = tmp_path / "run"
    res = run_cli("train", "--model", "pix2pixhd", "--a", a, "--b", b, "-o", run,
                  "--max-steps", "2", *TINY_CLI)
    assert res.exit_code == 0, res.output
    out = tmp_path / "translated.tif"
    res = run_cli("translate", run, a, "-o", out)
    assert res.exit_code == 0, res.output
    with rasterio.open(a) as src, rasterio.open(out) as dst:
        assert (dst.crs, dst.transform, dst.shape) == (src.crs, src.transform, src.shape)
        assert dst.count == 3 and dst.read().std() > 0


def test_onnx_export_equals_torch(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import onnxruntime as ort
    from conftest import make_checkpoint

    from geogan.export import export_onnx

    ckpt = make_checkpoint(tmp_path / "hd.safetensors", arch="pix2pixhd", model="pix2pixhd",
                           ngf=4, noise=0.05, upsample="resize")
    onnx_path = export_onnx(ckpt, tmp_path / "hd.onnx")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    module = load_generator(ckpt).module
    for shape in [(1, 3, 64, 64), (2, 3, 96, 128)]:
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(sum(shape))) * 2 - 1
        with torch.no_grad():
            expected = module(x).numpy()
        got = session.run(["output"], {"input": x.numpy()})[0]
        assert got.shape == expected.shape
        assert float(np.abs(got - expected).max()) < 1e-4


def test_torchrun_two_processes_train_pix2pixhd(tmp_path: Path, make_raster) -> None:
    """DDP fails at the second step if a weight of G or of any D scale got no gradient."""
    pairs = make_pairs(make_raster, 4)
    out = tmp_path / "run"
    run_torchrun("train", "--model", "pix2pixhd", "--a", pairs, "-o", out, "--device", "cpu",
                 *TINY_CLI, "--batch-size", "1", "--max-steps", "2", "--log-every", "1")
    meta = read_metadata(out)
    assert meta["model"] == "pix2pixhd" and meta["step"] == 2
    assert meta["training"]["world_size"] == 2


# -- the perceptual loss -------------------------------------------------------------------

def _vgg_file(path: Path) -> Path:
    """A random VGG19 'features' state dict in torchvision's names (fp16: half the bytes)."""
    from safetensors.torch import save_file

    from geogan.models.vgg import _features

    gen = torch.Generator().manual_seed(0)
    state = {f"features.{k}": (torch.randn(v.shape, generator=gen) * 0.05).half()
             for k, v in _features().state_dict().items()}
    save_file(state, str(path))
    return path


def test_vgg_weights_turn_the_perceptual_loss_on_and_are_recorded(tmp_path: Path) -> None:
    weights = _vgg_file(tmp_path / "vgg19.safetensors")
    settings = GANSettings(generator="pix2pixhd", ngf=4, ndf=4, num_d=1,
                           vgg_weights=str(weights))
    model = Pix2PixHD(3, 4, settings)
    a, b = torch.rand(1, 3, 64, 64) * 2 - 1, torch.rand(1, 4, 64, 64) * 2 - 1
    _, parts, _ = model.generator_step(model.g_net, a, b)
    losses = {k: v.detach() for k, v in parts.items()}
    assert float(losses["G_vgg"]) > 0
    total = losses["G_gan"] + losses["G_feat"] + losses["G_vgg"]
    assert float(losses["G_total"]) == pytest.approx(float(total), rel=1e-6)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert model.training_meta()["perceptual_loss"] == f"vgg19 sha256:{digest}"
    assert not any(k.startswith("vgg") for k in model.networks)  # never in the checkpoint
    with pytest.raises(InputError, match="needs 1 or at least 3 bands"):
        Pix2PixHD(3, 2, settings)


def test_cli_training_with_vgg_weights_records_their_sha256(tmp_path: Path,
                                                            make_raster) -> None:
    weights = _vgg_file(tmp_path / "vgg19.safetensors")
    pairs = make_pairs(make_raster, 1)
    run = tmp_path / "run"
    res = run_cli("train", "--model", "pix2pixhd", "--a", pairs, "-o", run,
                  "--vgg-weights", weights, "--max-steps", "1", "--log-every", "1", *TINY_CLI)
    assert res.exit_code == 0, res.output
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert read_metadata(run)["training"]["perceptual_loss"] == f"vgg19 sha256:{digest}"
    assert read_csv(run / "losses.csv")[0]["G_vgg"] > 0
    assert not any(k.startswith(("vgg", "features")) for k in load_checkpoint(run)[0])


def test_cli_refuses_a_file_that_holds_no_vgg19_weights(tmp_path: Path, make_raster) -> None:
    pairs = make_pairs(make_raster, 1)
    bad = tmp_path / "vgg.pth"
    torch.save({"features.0.weight": torch.zeros(3, 3, 3, 3)}, bad)
    res = run_cli("train", "--model", "pix2pixhd", "--a", pairs, "-o", tmp_path / "run",
                  "--vgg-weights", bad, "--max-steps", "1", *TINY_CLI)
    assert cli_error(res) == (f"Error: --vgg-weights {bad} has no VGG19 tensor "
                              "features.0.weight of shape (64, 3, 3, 3); give torchvision's "
                              "vgg19 weights")
    assert not (tmp_path / "run").exists()
