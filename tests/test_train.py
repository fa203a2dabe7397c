"""The training loop on tiny chips (CPU, ngf 8, 32 px crops): outputs, learning, resume, stops."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import train_until_cancelled
from PIL import Image

from geogan.checkpoint import load_checkpoint, load_generator, read_metadata
from geogan.errors import Cancelled, InputError, OutputError, TrainingError
from geogan.train import TrainConfig, lr_factor, resume_config, train

torch.set_num_threads(1)

TINY = {"crop": 32, "ngf": 8, "ndf": 8, "generator": "resnet_6blocks"}


def make_chips(make_raster: Callable[..., Path], folder: str, n: int, count: int = 3,
               size: int = 40, seed: int = 0, **kw) -> Path:
    for i in range(n):
        path = make_raster(f"{folder}/chip_{i:02d}.tif", width=size, height=size, count=count,
                           seed=seed + i, **kw)
    return path.parent


def read_csv(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def test_lr_schedule_constant_then_linear_to_zero() -> None:
    assert [lr_factor(s, 10) for s in (0, 4)] == [1.0, 1.0]
    assert lr_factor(5, 10) == 1.0 and lr_factor(6, 10) == pytest.approx(0.8)
    assert lr_factor(9, 10) == pytest.approx(0.2) and lr_factor(10, 10) == 0.0


def test_cyclegan_writes_a_complete_run_folder(tmp_path: Path, make_raster) -> None:
    a = make_chips(make_raster, "naip_2009", 5, count=4, nodata=0)
    b = make_chips(make_raster, "naip_2020", 4, count=3, seed=50, nodata=0)
    out = tmp_path / "run"
    calls: list[tuple[float, float, dict]] = []
    path = train(TrainConfig(a=a, b=b, output=out, max_steps=4, log_every=2, preview_every=2,
                             save_every=2, **TINY),
                 progress=lambda done, total, **info: calls.append((done, total, info)))
    assert path == out / "model.safetensors"
    meta = read_metadata(out)
    assert meta["model"] == "cyclegan" and meta["step"] == 4 and meta["chip_size"] == 32
    assert set(meta["generators"]) == {"a2b", "b2a"}
    assert meta["generators"]["a2b"]["arch"] == "resnet_6blocks"
    assert meta["generators"]["a2b"]["kwargs"]["in_channels"] == 4
    assert meta["generators"]["b2a"]["kwargs"]["in_channels"] == 3
    assert set(meta["discriminators"]) == {"D_A", "D_B"}
    assert meta["domains"]["a"]["name"] == "naip_2009"
    assert meta["domains"]["a"]["norm"]["hi"] == [255.0] * 4
    assert meta["domains"]["b"]["norm"]["nodata"] == 0
    # what the bands are: RGB chips say so, 4-band gray/undefined chips say nothing
    assert meta["domains"]["b"]["band_names"] == ["red", "green", "blue"]
    assert "band_names" not in meta["domains"]["a"]
    assert json.loads((out / "model.json").read_text())["step"] == 4
    assert (out / "train_state.safetensors").is_file() and (out / "train_state.json").is_file()
    tensors, _ = load_checkpoint(out)
    assert {k.split(".")[0] for k in tensors} == {"G_A2B", "G_B2A", "D_A", "D_B"}

    rows = read_csv(out / "losses.csv")
    assert [r["step"] for r in rows] == [2, 4]
    assert all(np.isfinite(r["D_A"]) and r["images_per_s"] > 0 for r in rows)
    assert rows[-1]["idt_A"] == 0  # 4 -> 3 bands: no identity loss
    assert calls[-1][:2] == (4, 4) and "D_A" in calls[-1][2] and "img_s" in calls[-1][2]

    previews = sorted((out / "previews").glob("*.png"))
    assert [p.name for p in previews] == ["step_0000002.png", "step_0000004.png"]
    with Image.open(previews[-1]) as im:
        assert im.width >= 3 * 160 and im.height >= 4 * 160  # 3 columns, 2 samples x A, B
        pixels = np.asarray(im.convert("RGB")).reshape(-1, 3)
        assert len({tuple(p) for p in pixels[::7].tolist()}) > 50  # real images, not blank
    with Image.open(out / "loss_plot.png") as im:
        colours = {tuple(c) for c in np.asarray(im.convert("RGB")).reshape(-1, 3).tolist()}
        assert (31, 119, 180) in colours and (255, 127, 14) in colours  # two drawn series

    g = load_generator(out, "a2b")
    assert g.in_bands == 4 and g.out_bands == 3 and g.checkpoint.domains["b"].name == "naip_2020"
    assert g.module(torch.zeros(1, 4, 32, 32)).shape == (1, 3, 32, 32)
    assert load_generator(out, "b2a").in_bands == 3


def test_pix2pix_learns_a_synthetic_mapping(tmp_path: Path, make_raster) -> None:
    """B = 255 - A with bands reversed; within 100 steps the weighted L1 falls by over half."""
    from conftest import make_raster_array

    for i in range(8):
        a = make_raster_array(40, 40, 3, "uint8", seed=i)
        make_raster(f"pairs/A/c{i}.tif", data=a)
        make_raster(f"pairs/B/c{i}.tif", data=255 - a[::-1])
    out = tmp_path / "run"
    train(TrainConfig(a=tmp_path / "pairs", b=None, output=out, model="pix2pix", max_steps=100,
                      batch_size=4, log_every=10, preview_every=100, save_every=100, seed=0,
                      **TINY))
    l1 = [r["G_L1"] for r in read_csv(out / "losses.csv")]
    assert len(l1) == 10
    assert l1[-1] < 0.5 * l1[0], l1  # measured: about 33 -> 13 (0.4)
    # the saved generator maps a chip it saw closer to its target than the input is
    g = load_generator(out)
    a = make_raster_array(32, 32, 3, "uint8", seed=3)
    x = torch.from_numpy(g.in_norm.to_model(a))[None]
    y = g.out_norm.from_model(g.module(x).detach().numpy()[0]).astype(float)
    target = (255 - a[::-1]).astype(float)
    assert np.abs(y - target).mean() < 0.5 * np.abs(a.astype(float) - target).mean()


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)[0]


def test_resume_continues_exactly(tmp_path: Path, make_raster) -> None:
    a = make_chips(make_raster, "a", 6)
    b = make_chips(make_raster, "b", 5, seed=30)
    cfg = {"a": a, "b": b, "max_steps": 6, "batch_size": 2, "pool_size": 3, "log_every": 1,
           "preview_every": 100, "save_every": 100, **TINY}
    train(TrainConfig(output=tmp_path / "straight", **cfg))

    stopped = tmp_path / "stopped"
    train_until_cancelled(TrainConfig(output=stopped, **cfg))
    state = read_metadata(stopped / "train_state.safetensors")
    assert read_metadata(stopped)["step"] == 2 and state["step"] == 2
    assert state["epoch"] == 0 and state["epoch_step"] == 2  # mid-epoch (3 steps per epoch)

    train(resume_config(stopped))
    assert read_metadata(stopped)["step"] == 6
    ref, got = _tensors(tmp_path / "straight"), _tensors(stopped)
    assert ref.keys() == got.keys()
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=0, atol=1e-6, msg=k)
    ref_s = _tensors(tmp_path / "straight" / "train_state.safetensors")
    got_s = _tensors(stopped / "train_state.safetensors")
    for k in ("pool_A.images", "pool_B.images", "pool_A.rng", "rng.torch"):
        assert torch.equal(ref_s[k], got_s[k]), k
    rows_ref, rows = read_csv(tmp_path / "straight" / "losses.csv"), read_csv(
        stopped / "losses.csv")
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    for r0, r1 in zip(rows_ref, rows, strict=True):
        assert r0["lr"] == r1["lr"]  # the schedule went on as if never stopped
        assert r1["D_B"] == pytest.approx(r0["D_B"], abs=1e-5)


def test_resume_keeps_the_run_settings(tmp_path: Path, make_raster) -> None:
    a, b = make_chips(make_raster, "a", 2), make_chips(make_raster, "b", 2, seed=9)
    out = tmp_path / "run"
    train(TrainConfig(a=a, b=b, output=out, max_steps=2, **TINY))
    with pytest.raises(InputError, match="--ngf 16 differs"):
        resume_config(out, ngf=16)
    # a longer run continues the step count
    train(resume_config(out, max_steps=3))
    assert read_metadata(out)["step"] == 3
    assert [r["step"] for r in read_csv(out / "losses.csv")] == [2, 3]


#: A run's config as ``train_state`` stored it before the GAN settings moved into
#: ``TrainConfig.gan`` (flat: every setting a key of its own).
_STORED_BEFORE_GAN_FIELD = {
    "a": "/data/a", "b": "/data/b", "output": "/runs/x", "model": "pix2pix",
    "direction": "AtoB", "epochs": 200, "max_steps": 5, "batch_size": 1, "crop": 256,
    "generator": None, "ngf": 16, "discriminator": "patchgan", "ndf": 64, "n_layers": 3,
    "norm": "instance", "use_dropout": False, "gan_mode": "lsgan", "lambda_cycle": 10.0,
    "lambda_identity": 0.5, "lambda_l1": 50.0, "pool_size": 50, "upsample": "resize",
    "lambda_nce": None, "nce_patches": 256, "lr": 0.0002, "beta1": 0.5, "seed": 0,
    "augment": True, "name_a": None, "name_b": None, "device": "auto", "precision": "auto",
    "compile": False, "workers": None, "log_every": 50, "preview_every": 500,
    "save_every": 1000, "cache_mb": 1024, "resume": False, "overwrite": False,
    "windows": {"aoi": None, "aoi_a": None, "aoi_b": None, "max_nodata": 0.0, "min_std": 0.0,
                "crs": None, "res": None, "align_to": None, "max_upsample": 4.0,
                "resampling": "bilinear"}}

#: The settings pix2pixHD added after that, as a run without them reads back.
_PIX2PIXHD_DEFAULTS = {"num_d": 3, "lambda_feat": 10.0, "vgg_weights": None}


def test_a_config_stored_before_the_gan_field_reads_back_the_same() -> None:
    config = TrainConfig.from_json(_STORED_BEFORE_GAN_FIELD)
    assert (config.gan.ngf, config.gan.lambda_l1, config.ngf, config.max_steps) == (16, 50.0, 16, 5)
    assert config.settings().generator == "unet_256"  # pix2pix's own, as before
    # new runs store the same keys, and the settings added since at their defaults:
    # pix2pixHD's, and the window options' stacks
    windows = {**_STORED_BEFORE_GAN_FIELD["windows"], "a_stack": [], "b_stack": []}
    assert config.to_json() == {**_STORED_BEFORE_GAN_FIELD, **_PIX2PIXHD_DEFAULTS,
                                "windows": windows}
    # flat keywords and dataclasses.replace set the GAN settings as before
    assert dataclasses.replace(config, ngf=8, lambda_cycle=3.0).gan == dataclasses.replace(
        config.gan, ngf=8, lambda_cycle=3.0)
    assert set(TrainConfig.names()) == set(_STORED_BEFORE_GAN_FIELD) | set(_PIX2PIXHD_DEFAULTS)


def test_a_run_stored_before_the_gan_field_resumes(tmp_path: Path, make_raster) -> None:
    a, b = make_chips(make_raster, "a", 2), make_chips(make_raster, "b", 2, seed=9)
    out = tmp_path / "run"
    train(TrainConfig(a=a, b=b, output=out, max_steps=1, **TINY))
    state = out / "train_state.safetensors"
    stored = read_metadata(state)["config"]
    # the keys old runs have, and pix2pixHD's since
    assert set(stored) == set(_STORED_BEFORE_GAN_FIELD) | set(_PIX2PIXHD_DEFAULTS)
    with pytest.raises(InputError, match="--lambda-cycle 3.0 differs"):
        resume_config(out, lambda_cycle=3.0)
    train(resume_config(out, max_steps=2))
    assert read_metadata(out)["step"] == 2


def test_existing_run_folder_needs_overwrite(tmp_path: Path, make_raster) -> None:
    a, b = make_chips(make_raster, "a", 2), make_chips(make_raster, "b", 2, seed=9)
    out = tmp_path / "run"
    train(TrainConfig(a=a, b=b, output=out, max_steps=1, **TINY))
    before = (out / "model.safetensors").read_bytes()
    with pytest.raises(OutputError, match="--overwrite"):
        train(TrainConfig(a=a, b=b, output=out, max_steps=1, **TINY))
    assert (out / "model.safetensors").read_bytes() == before
    train(TrainConfig(a=a, b=b, output=out, max_steps=2, overwrite=True, **TINY))
    assert read_metadata(out)["step"] == 2
    other = tmp_path / "notes"
    other.mkdir()
    (other / "thesis.txt").write_text("precious")
    with pytest.raises(OutputError, match="not a geogan run folder"):
        train(TrainConfig(a=a, b=b, output=other, max_steps=1, overwrite=True, **TINY))
    assert (other / "thesis.txt").read_text() == "precious"


def _nan_after(monkeypatch: pytest.MonkeyPatch, calls_ok: int) -> None:
    import geogan.models.pix2pix as gan_module

    real = gan_module.l1_loss
    count = {"n": 0}

    def l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        count["n"] += 1
        value = real(x, y)
        return value * float("nan") if count["n"] > calls_ok else value

    monkeypatch.setattr(gan_module, "l1_loss", l1)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(
        tmp_path: Path, make_raster, monkeypatch: pytest.MonkeyPatch) -> None:
    make_chips(make_raster, "pairs/A", 3)
    make_chips(make_raster, "pairs/B", 3, seed=5)
    out = tmp_path / "run"
    _nan_after(monkeypatch, 2)  # pix2pix: one L1 per step, so step 3 goes NaN
    with pytest.raises(TrainingError, match=r"loss G_L1 became non-finite at step 3") as err:
        train(TrainConfig(a=tmp_path / "pairs", b=None, output=out, model="pix2pix",
                          max_steps=6, save_every=2, **TINY))
    assert "step 2" in str(err.value) and "\n" not in str(err.value)
    meta = read_metadata(out)
    assert meta["step"] == 2
    assert all(torch.isfinite(t).all() for t in _tensors(out).values())


def test_non_finite_loss_before_any_checkpoint_leaves_no_run_folder(
        tmp_path: Path, make_raster, monkeypatch: pytest.MonkeyPatch) -> None:
    make_chips(make_raster, "pairs/A", 3)
    make_chips(make_raster, "pairs/B", 3, seed=5)
    _nan_after(monkeypatch, 0)
    with pytest.raises(TrainingError, match="no checkpoint had been saved"):
        train(TrainConfig(a=tmp_path / "pairs", b=None, output=tmp_path / "run",
                          model="pix2pix", max_steps=4, **TINY))
    assert not (tmp_path / "run").exists()


def test_sigterm_saves_a_checkpoint_then_stops(tmp_path: Path, make_raster) -> None:
    a, b = make_chips(make_raster, "a", 4), make_chips(make_raster, "b", 4, seed=9)
    out = tmp_path / "run"
    sent: list[int] = []

    def progress(done: float, total: float, **info: float | str) -> None:
        if done >= 2 and not sent:
            sent.append(int(done))
            os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Cancelled, match="SIGTERM.*--resume"):
        train(TrainConfig(a=a, b=b, output=out, max_steps=50, log_every=1, **TINY),
              progress=progress)
    assert signal.getsignal(signal.SIGTERM) == previous  # handler restored
    step = read_metadata(out)["step"]
    assert sent and sent[0] <= step <= sent[0] + 1
    assert read_metadata(out / "train_state.safetensors")["step"] == step


def test_paired_side_by_side_pngs_train(tmp_path: Path) -> None:
    """pix2pix 'maps'-style images: A on the left half, B on the right half."""
    folder = tmp_path / "maps" / "train"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        left = rng.integers(0, 255, (36, 36, 3), dtype=np.uint8)
        Image.fromarray(np.concatenate([left, 255 - left], axis=1)).save(folder / f"{i}.jpg")
    out = tmp_path / "run"
    train(TrainConfig(a=folder, b=None, output=out, model="pix2pix", max_steps=2, **TINY))
    meta = read_metadata(out)
    assert meta["domains"]["a"]["name"] == "train left"
    assert meta["generators"]["a2b"]["kwargs"]["out_channels"] == 3
