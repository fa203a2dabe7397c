"""Normalisation statistics: global/dense instance norm, estimation, files, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner
from conftest import cli_error, make_checkpoint

from geogan import normstats
from geogan.blend import reflect_index
from geogan.checkpoint import LoadedGenerator, load_generator
from geogan.cli import main
from geogan.contract import choices
from geogan.contract.options import TRANSLATE
from geogan.errors import InputError
from geogan.models.generators import ResnetGenerator
from geogan.normalize import BandNorm
from geogan.normstats import (
    NormStats,
    estimate,
    estimate_stats,
    load_stats,
    plan_global_sample,
    sampling,
)
from geogan.translate import TranslateConfig, translate_files, translate_raster

PROJECTED = "EPSG:26914"
GEOGRAPHIC = "EPSG:4326"

torch.set_num_threads(1)

UINT8 = BandNorm.full_range("uint8", 3, 0)
#: Float output in model units, so outputs compare without rounding.
FLOAT = BandNorm("float32", (-1.0,) * 3, (1.0,) * 3)


def resnet(n_blocks: int = 1, ngf: int = 4, seed: int = 0) -> torch.nn.Module:
    """A seeded random ResNet generator with torch's default init (strong enough signal)."""
    torch.manual_seed(seed)
    return ResnetGenerator(3, 3, ngf=ngf, n_blocks=n_blocks).eval()


def loaded(module: torch.nn.Module, out: BandNorm = UINT8) -> LoadedGenerator:
    return LoadedGenerator(module, "a2b", UINT8, out)


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def contrasted(width: int, height: int) -> np.ndarray:
    """Texture whose brightness changes strongly across the raster (windows' stats differ)."""
    from conftest import make_raster_array

    base = make_raster_array(width, height, 3, "float32", seed=1)
    base = (base - base.min()) / np.ptp(base)
    ramp = (np.linspace(0.15, 1.0, width)[None, None, :]
            * np.linspace(1.0, 0.5, height)[None, :, None])
    return (base * ramp * 250 + 3).astype(np.uint8)


def global_stats(gen: LoadedGenerator, src: Path) -> NormStats:
    return estimate_stats(gen, [src], "global", [[1, 2, 3]], device="cpu", precision="fp32")


# --------------------------------------------------------------------------- exactness


def test_global_small_windows_equal_one_window_exactly(make_raster, tmp_path):
    """With the same global statistics the network is a local operator: 128 px windows whose
    hard-cropped cores (32 px margin) lie beyond the receptive field of the window's padding
    (23 px for ResNet with one block) reproduce one window over the whole raster, to float
    rounding. Both layouts start at -32 px, so the mirrored canvas and the stride-4 phase agree."""
    gen = loaded(resnet(n_blocks=1), FLOAT)
    src = make_raster("in.tif", data=contrasted(200, 152))
    stats = global_stats(gen, src)
    one = translate_raster(gen, src, tmp_path / "one.tif",
                           TranslateConfig(tile=320, overlap=64, blend="none", norm="global",
                                           precision="fp32"), stats=stats)
    many = translate_raster(gen, src, tmp_path / "many.tif",
                            TranslateConfig(tile=128, overlap=64, blend="none", batch_size=5,
                                            norm="global", precision="fp32"), stats=stats)
    a, b = read(one), read(many)
    assert a.std() > 0.05  # a real signal
    np.testing.assert_allclose(b, a, rtol=0, atol=2e-5)
    # the same layouts with each window's own statistics differ by far more
    w1 = translate_raster(gen, src, tmp_path / "w1.tif",
                          TranslateConfig(tile=320, overlap=64, blend="none", norm="window"))
    w2 = translate_raster(gen, src, tmp_path / "w2.tif",
                          TranslateConfig(tile=128, overlap=64, blend="none", norm="window"))
    assert np.abs(read(w1) - read(w2)).mean() > 100 * np.abs(a - b).mean() + 0.01


def test_global_small_windows_reproduce_the_whole_raster_window(make_raster, tmp_path):
    """Tolerance: 64 px windows in global mode (statistics estimated from the raster) remove at
    least two thirds of window mode's mean difference to one window over the whole raster,
    and half of its 99th percentile. What remains, on this seeded random network (default
    init, far more sensitive to its statistics than a trained one), is the padding of the
    small windows, whose 16 px margin lies inside the receptive field (the exact test above
    has none), and the whole window's own statistics, which count its mirrored border."""
    gen = loaded(resnet(n_blocks=1))
    src = make_raster("in.tif", data=contrasted(184, 184))
    ref = read(translate_raster(gen, src, tmp_path / "ref.tif",
                                TranslateConfig(tile=192, overlap=8, norm="window",
                                                precision="fp32"))).astype(float)
    diffs = {}
    for mode in ("window", "global"):
        out = translate_raster(gen, src, tmp_path / f"{mode}.tif",
                               TranslateConfig(tile=64, overlap=32, batch_size=4, norm=mode,
                                               precision="fp32"))
        diffs[mode] = np.abs(read(out) - ref)
    assert diffs["window"].mean() > 10.0, diffs["window"].mean()  # window mode depends on it
    assert diffs["global"].mean() < diffs["window"].mean() / 3
    assert np.percentile(diffs["global"], 99) < np.percentile(diffs["window"], 99) / 2


def test_window_mode_is_plain_instance_norm_on_each_window(make_raster, tmp_path, monkeypatch):
    """--norm window runs the generator itself, unchanged: one window over a raster equals
    the generator applied to the mirrored window, bit for bit."""
    gen = loaded(resnet(n_blocks=1))
    data = contrasted(90, 70)
    src = make_raster("in.tif", data=data)

    def boom(module):
        raise AssertionError("window mode must not swap layers")

    monkeypatch.setattr(normstats, "prepared_for", boom)
    out = read(translate_raster(gen, src, tmp_path / "w.tif",
                                TranslateConfig(tile=92, overlap=0, norm="window",
                                                precision="fp32")))
    # one 92 px window (a --tile larger than the raster would be clamped to it)
    win = data[:, reflect_index(0, 92, 70)][:, :, reflect_index(0, 92, 90)]
    x = torch.from_numpy(win[None].astype(np.float32) / 255 * 2 - 1)
    with torch.inference_mode():
        y = gen.module(x)[0, :, :70, :90].clamp(-1, 1)
    expect = ((y + 1) * 0.5 * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    np.testing.assert_array_equal(out, expect)


def test_generator_without_instance_norm_is_untouched(make_raster, tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3, padding=1), torch.nn.Tanh()).eval()
    gen = loaded(net)
    src = make_raster("in.tif", 50, 40)
    outs = [read(translate_raster(gen, src, tmp_path / f"{m}.tif",
                                  TranslateConfig(tile=32, overlap=8, norm=m)))
            for m in ("window", "global", "dense")]
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


# --------------------------------------------------------------------------- estimation


def test_layer_stats_are_those_of_every_pixel(make_raster, tmp_path):
    """Layer by layer: the first layer's statistics are the mean and variance of its
    features over the raster's pixels; the next ones are computed on inputs normalised
    with the global statistics before them (checked by recomputing them by hand)."""
    gen = loaded(resnet(n_blocks=1))
    data = contrasted(70, 50)
    src = make_raster("in.tif", data=data)
    stats = global_stats(gen, src)
    model = gen.module.model
    m = sampling.SAMPLE_FULL_MARGIN
    rows, cols = reflect_index(-m, 50 + 2 * m + 2, 50), reflect_index(-m, 72 + 2 * m, 70)
    x = torch.from_numpy(data[:, rows][:, :, cols][None].astype(np.float32) / 255 * 2 - 1)
    with torch.inference_mode():
        h = model[0](x)
        core = h[0, :, m:m + 50, m:m + 70]  # raster pixels only
        mean1, var1 = stats.layers["model.1"]
        np.testing.assert_allclose(mean1, core.mean((1, 2)).double().numpy(), rtol=1e-5)
        np.testing.assert_allclose(var1, core.var((1, 2), unbiased=False).double().numpy(),
                                   rtol=1e-4)
        h = torch.relu((h - torch.tensor(mean1).float().view(1, -1, 1, 1))
                       / torch.sqrt(torch.tensor(var1).float().view(1, -1, 1, 1) + 1e-5))
        h = model[3](h)  # the first downsampling convolution, (1, 8, H/2, W/2)
        core = h[0, :, m // 2:(m + 50) // 2, m // 2:(m + 70) // 2]
        mean2, var2 = stats.layers["model.4"]
        np.testing.assert_allclose(mean2, core.mean((1, 2)).double().numpy(), rtol=1e-4,
                                   atol=1e-6)
        np.testing.assert_allclose(var2, core.var((1, 2), unbiased=False).double().numpy(),
                                   rtol=1e-3)


def test_sampled_windows_tile_the_raster(make_raster, tmp_path, monkeypatch):
    """Above SAMPLE_FULL_PX, sample windows' cores tile the raster: with budget for all of
    them the first layer's statistics equal the whole-raster ones (its 3 px receptive field
    stays inside the 8 px border); deeper layers are close."""
    gen = loaded(resnet(n_blocks=1))
    src = make_raster("in.tif", data=contrasted(150, 110))
    whole = global_stats(gen, src)
    monkeypatch.setattr(sampling, "SAMPLE_FULL_PX", 0)
    monkeypatch.setattr(sampling, "SAMPLE_WINDOW", 64)
    monkeypatch.setattr(sampling, "SAMPLE_BORDER", 8)
    monkeypatch.setattr(sampling, "SAMPLE_FRACTION", 10.0)
    sampled = global_stats(gen, src)
    assert sampled.sample["windows"] == 4 * 3  # ceil(150 / 48) x ceil(110 / 48)
    assert sampled.sample["pixels"] == 150 * 110  # every pixel once
    np.testing.assert_allclose(sampled.layers["model.1"][0], whole.layers["model.1"][0],
                               rtol=1e-5, atol=1e-7)
    for name, (mean, var) in whole.layers.items():
        np.testing.assert_allclose(sampled.layers[name][0], mean, atol=0.05 * np.sqrt(var).max())


def test_sample_plan_is_bounded_spread_and_tile_independent():
    per_px, passes = 200.0, 8.5
    plan = plan_global_sample([(16000, 16000)], per_px, 4, passes)
    n = len(plan.windows)
    assert plan.chunk > 0  # layer by layer: more windows than one batch would hold
    assert n > sampling.SAMPLE_MEMORY / per_px / 256 ** 2
    assert n * passes * 256 ** 2 <= sampling.SAMPLE_MAX_WORK
    assert plan.chunk * 256 ** 2 * per_px <= sampling.SAMPLE_MEMORY
    rows = sorted({w.row for w in plan.windows})
    cols = sorted({w.col for w in plan.windows})
    assert len(rows) > 3 and len(cols) > 3
    assert rows[0] < 16000 * 0.2 and rows[-1] > 16000 * 0.8  # spread over the raster
    assert cols[0] < 16000 * 0.2 and cols[-1] > 16000 * 0.8
    mid = plan_global_sample([(3000, 3000)], per_px, 4, passes)
    assert mid.chunk == 0 and len(mid.windows) * 256 ** 2 * per_px <= sampling.SAMPLE_MEMORY
    small = plan_global_sample([(934, 724)], per_px, 4, passes)
    assert len(small.windows) == 1 and (small.height, small.width) == (756, 968)
    shared = plan_global_sample([(3000, 3000), (1000, 1000)], per_px, 4, passes)
    by_raster = [sum(w.index == i for w in shared.windows) for i in (0, 1)]
    assert by_raster[0] > 4 * by_raster[1] >= 4  # shared out by area


def test_layer_by_layer_in_chunks_equals_one_batch(make_raster, tmp_path, monkeypatch):
    """The bounded-memory estimation (chunks of 2 windows, once per layer, the layers
    before frozen) gives the one-batch statistics, to float rounding."""
    import dataclasses

    gen = loaded(resnet(n_blocks=2))
    src = make_raster("in.tif", data=contrasted(150, 110))
    monkeypatch.setattr(sampling, "SAMPLE_FULL_PX", 0)
    monkeypatch.setattr(sampling, "SAMPLE_WINDOW", 64)
    monkeypatch.setattr(sampling, "SAMPLE_BORDER", 8)
    monkeypatch.setattr(sampling, "SAMPLE_FRACTION", 2.0)
    planner = normstats.plan_global_sample
    plans = {}
    for chunk in (0, 2):
        monkeypatch.setattr(estimate, "plan_global_sample", lambda *a, c=chunk, **k:
                            dataclasses.replace(planner(*a, **k), chunk=c))
        plans[chunk] = global_stats(gen, src)
    assert plans[0].sample["windows"] == plans[2].sample["windows"] >= 5
    assert plans[2].sample["passes"] == len(plans[2].layers) == 3 + 2 * 2 + 2
    for name, (mean, var) in plans[0].layers.items():
        np.testing.assert_allclose(plans[2].layers[name][0], mean, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(plans[2].layers[name][1], var, rtol=1e-3, atol=1e-8)


def test_probe_finds_layers_in_forward_order():
    info = normstats.probe(resnet(n_blocks=2), 3, "cpu")
    assert info.order[:2] == ("model.1", "model.4") and info.order[-1] == "model.15"
    assert len(info.order) == 9
    assert len(info.order) > info.passes > 2  # a pass up to each layer, not whole passes
    assert info.bytes_per_px > 4 * 4  # at least a full-resolution 4-channel float tensor


def test_all_nodata_raster_is_refused(make_raster, tmp_path):
    gen = loaded(resnet())
    src = make_raster("in.tif", 40, 30, nodata=0, data=np.zeros((3, 30, 40), np.uint8))
    with pytest.raises(InputError, match="no valid pixels"):
        translate_raster(gen, src, tmp_path / "out.tif", TranslateConfig(tile=32, overlap=8))
    assert not (tmp_path / "out.tif").exists()


def test_nodata_pixels_do_not_count(make_raster, tmp_path):
    """Statistics come from valid pixels only: the first layer's mean is that of its
    features over the pixels outside the nodata block."""
    gen = loaded(resnet())
    data = contrasted(70, 50)
    data[data == 0] = 1
    data[:, 10:30, 40:] = 0
    stats = global_stats(gen, make_raster("a.tif", data=data, nodata=0))
    m = sampling.SAMPLE_FULL_MARGIN
    rows, cols = reflect_index(-m, 84, 50), reflect_index(-m, 104, 70)
    x = torch.from_numpy(data[:, rows][:, :, cols][None].astype(np.float32) / 255 * 2 - 1)
    with torch.inference_mode():
        core = gen.module.model[0](x)[0, :, m:m + 50, m:m + 70].double().numpy()
    valid = (data != 0).any(axis=0)
    np.testing.assert_allclose(stats.layers["model.1"][0], core[:, valid].mean(axis=1),
                               rtol=1e-5, atol=1e-7)
    assert np.abs(core.mean(axis=(1, 2)) - core[:, valid].mean(axis=1)).max() > 1e-3


# --------------------------------------------------------------------------- dense


def test_dense_with_a_constant_grid_is_global(make_raster, tmp_path):
    """Interpolating a grid whose cells all hold the global statistics gives them back."""
    gen = loaded(resnet(n_blocks=1), FLOAT)
    src = make_raster("in.tif", data=contrasted(120, 90))
    g = global_stats(gen, src)
    grid = {"width": 120, "height": 90, "spacing": 40, "y": [10.0, 50.0, 80.0],
            "x": [0.0, 60.0]}
    layers = {k: (np.broadcast_to(m[:, None, None], (m.size, 3, 2)).copy(),
                  np.broadcast_to(v[:, None, None], (v.size, 3, 2)).copy())
              for k, (m, v) in g.layers.items()}
    dense = NormStats("dense", g.model, layers, g.sample, grid)
    cfg = {"tile": 64, "overlap": 16, "batch_size": 3, "precision": "fp32"}
    a = read(translate_raster(gen, src, tmp_path / "g.tif", TranslateConfig(**cfg, norm="global"),
                              stats=g))
    b = read(translate_raster(gen, src, tmp_path / "d.tif", TranslateConfig(**cfg, norm="dense"),
                              stats=dense))
    np.testing.assert_allclose(b, a, atol=2e-5)


def test_dense_interpolation_weights():
    cls = normstats.stats_norm_class()
    ctx = cls.Context()
    ctx.grid_y = torch.tensor([10.0, 50.0])
    ctx.grid_x = torch.tensor([5.0])
    ctx.origins = torch.tensor([[0.0, 0.0], [40.0, 0.0]])
    ctx.tile = 16
    mean = torch.tensor([[[1.0], [3.0]]])  # (C=1, rows=2, cols=1)
    var = torch.tensor([[[4.0], [4.0]]])
    m, v = ctx.interpolate(mean, var, (16, 8))
    rows = torch.arange(16) + 0.0
    expect0 = 1 + 2 * ((rows - 10) / 40).clamp(0, 1)
    torch.testing.assert_close(m[0, 0, :, 0], expect0)
    torch.testing.assert_close(m[1, 0, :, 0], 1 + 2 * ((rows + 40 - 10) / 40).clamp(0, 1))
    torch.testing.assert_close(v, torch.full_like(v, 4.0))
    m2, _ = ctx.interpolate(mean, var, (4, 2))  # a layer at 1/4 resolution: pixel centres
    torch.testing.assert_close(m2[0, 0, :, 0], 1 + 2 * ((torch.arange(4) * 4 + 1.5 - 10) / 40
                                                        ).clamp(0, 1))


@pytest.mark.parametrize("crs", [PROJECTED, GEOGRAPHIC])
@pytest.mark.parametrize("norm", ["global", "dense"])
def test_modes_keep_georeference_and_mask(make_raster, tmp_path, crs, norm, tiny_checkpoint):
    src = make_raster("in.tif", 77, 53, crs=crs, nodata=0, nodata_box=(0, 9, 50, 77))
    out = translate_files(tiny_checkpoint, [src], tmp_path / "out.tif",
                          TranslateConfig(tile=32, overlap=8, batch_size=4, norm=norm))[0]
    with rasterio.open(src) as a, rasterio.open(out) as b:
        assert (b.crs, b.transform, b.width, b.height) == (a.crs, a.transform, a.width, a.height)
        assert (b.count, b.dtypes[0], b.nodata) == (3, "uint8", 0)
        np.testing.assert_array_equal(b.dataset_mask(), a.dataset_mask())
        assert b.read()[:, a.dataset_mask() > 0].std() > 0


def test_precision_auto_follows_the_cpu(monkeypatch):
    from geogan import devices
    from geogan.translate import resolve_precision

    for native, expect in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda native=native: native)
        assert resolve_precision("auto", "cpu") == expect
        assert resolve_precision("auto", "cuda:0") == "bf16"
        assert resolve_precision("fp32", "cuda:0") == "fp32"


def test_bf16_global_is_close_to_fp32(make_raster, tmp_path):
    gen = loaded(resnet(n_blocks=2, ngf=8))
    src = make_raster("in.tif", data=contrasted(96, 80))
    outs = {p: read(translate_raster(gen, src, tmp_path / f"{p}.tif",
                                     TranslateConfig(tile=48, overlap=8, precision=p)))
            for p in ("fp32", "bf16")}
    d = np.abs(outs["fp32"].astype(int) - outs["bf16"])
    assert d.mean() < 1.5 and d.max() > 0  # bf16 really ran, and stays close


# --------------------------------------------------------------------------- files


def test_stats_file_round_trip(make_raster, tmp_path, tiny_checkpoint):
    src = make_raster("in.tif", data=contrasted(90, 70))
    cfg = {"tile": 32, "overlap": 8, "batch_size": 4, "precision": "fp32"}
    out = translate_files(tiny_checkpoint, [src], tmp_path / "a.tif",
                          TranslateConfig(**cfg, save_stats=True))[0]
    saved = tmp_path / "a.stats.json"
    assert saved.is_file()
    stats = load_stats(saved)
    gen = load_generator(tiny_checkpoint)
    fresh = global_stats(gen, src)
    assert stats.model == fresh.model and set(stats.layers) == set(fresh.layers)
    for name, (m, v) in fresh.layers.items():
        np.testing.assert_array_equal(stats.layers[name][0], m)
        np.testing.assert_array_equal(stats.layers[name][1], v)
    again = translate_files(tiny_checkpoint, [src], tmp_path / "b.tif",
                            TranslateConfig(**cfg, stats=str(saved)))[0]
    np.testing.assert_array_equal(read(again), read(out))
    stats.save(tmp_path / "c.json")
    assert json.loads((tmp_path / "c.json").read_text()) == json.loads(saved.read_text())
    dense = translate_files(tiny_checkpoint, [src], tmp_path / "d.tif",
                            TranslateConfig(**cfg, norm="dense", save_stats=True))[0]
    d = load_stats(tmp_path / "d.stats.json")
    assert d.mode == "dense" and d.grid["width"] == 90
    np.testing.assert_array_equal(read(translate_files(
        tiny_checkpoint, [src], tmp_path / "e.tif",
        TranslateConfig(**cfg, norm="dense", stats=str(tmp_path / "d.stats.json")))[0]),
        read(dense))


def test_stats_of_another_model_or_mode_are_refused(make_raster, tmp_path):
    a = make_checkpoint(tmp_path / "a.safetensors")
    b = make_checkpoint(tmp_path / "b.safetensors", seed=1)
    src = make_raster("in.tif", 60, 40)
    cfg = {"tile": 32, "overlap": 8}
    translate_files(a, [src], tmp_path / "a.tif", TranslateConfig(**cfg, save_stats=True))
    stats = tmp_path / "a.stats.json"
    with pytest.raises(InputError, match="made for another model"):
        translate_files(b, [src], tmp_path / "b.tif", TranslateConfig(**cfg, stats=str(stats)))
    with pytest.raises(InputError, match="holds global statistics but --norm is dense"):
        translate_files(a, [src], tmp_path / "b.tif",
                        TranslateConfig(**cfg, norm="dense", stats=str(stats)))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        translate_files(a, [src], tmp_path / "b.tif", TranslateConfig(**cfg, stats=str(bad)))
    bad.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(InputError, match="not a geogan statistics file"):
        translate_files(a, [src], tmp_path / "b.tif", TranslateConfig(**cfg, stats=str(bad)))
    assert not (tmp_path / "b.tif").exists()
    other = make_raster("other.tif", 61, 40)
    translate_files(a, [src], tmp_path / "d.tif",
                    TranslateConfig(**cfg, norm="dense", save_stats=True))
    with pytest.raises(InputError, match="dense statistics of a 60 x 40 px raster"):
        translate_files(a, [other], tmp_path / "e.tif",
                        TranslateConfig(**cfg, norm="dense", stats=str(tmp_path / "d.stats.json")))
    with pytest.raises(InputError, match="--norm window uses no statistics"):
        TranslateConfig(norm="window", save_stats=True)


def test_batch_stats_per_raster_or_shared(make_raster, tmp_path, tiny_checkpoint):
    make_raster("in/r0.tif", data=contrasted(60, 40))
    make_raster("in/r1.tif", data=(255 - contrasted(60, 40)))
    cfg = {"tile": 32, "overlap": 8}
    translate_files(tiny_checkpoint, [tmp_path / "in"], tmp_path / "own",
                    TranslateConfig(**cfg, save_stats=True))
    own = [load_stats(tmp_path / "own" / f"r{i}.stats.json") for i in (0, 1)]
    assert np.abs(own[0].layers["model.1"][0]
                  - own[1].layers["model.1"][0]).max() > 1e-3
    translate_files(tiny_checkpoint, [tmp_path / "in"], tmp_path / "shared",
                    TranslateConfig(**cfg, save_stats=True, shared_stats=True))
    shared = [json.loads((tmp_path / "shared" / f"r{i}.stats.json").read_text()) for i in (0, 1)]
    assert shared[0] == shared[1] and shared[0]["sample"]["rasters"] == ["r0.tif", "r1.tif"]
    # skip-existing leaves finished outputs and their statistics alone
    (tmp_path / "shared" / "r1.tif").unlink()
    (tmp_path / "shared" / "r1.stats.json").unlink()
    before = (tmp_path / "shared" / "r0.stats.json").stat().st_mtime_ns
    translate_files(tiny_checkpoint, [tmp_path / "in"], tmp_path / "shared",
                    TranslateConfig(**cfg, save_stats=True, shared_stats=True,
                                    skip_existing=True))
    assert (tmp_path / "shared" / "r0.stats.json").stat().st_mtime_ns == before
    assert json.loads((tmp_path / "shared" / "r1.stats.json").read_text()) == shared[1]


# --------------------------------------------------------------------------- CLI


def _cli(*args: object):
    return CliRunner().invoke(main, ["--progress", "none", "translate", *map(str, args)])


def test_cli_norm_choices_come_from_the_library():
    result = CliRunner().invoke(main, ["translate", "--help"])
    flat = result.output.replace("\n", "").replace(" ", "")
    assert f"--norm[{'|'.join(choices.NORM_MODES)}]" in flat
    assert f"[default:{TRANSLATE.default_of('norm')}]" in flat


def test_cli_norm_options(make_raster, tmp_path):
    a = make_checkpoint(tmp_path / "a.safetensors")
    b = make_checkpoint(tmp_path / "b.safetensors", seed=1)
    src = make_raster("in.tif", data=contrasted(70, 50))
    tile = ("--tile", "32", "--overlap", "8")
    r = _cli(a, src, "-o", tmp_path / "g.tif", *tile, "--save-stats")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "g.stats.json").is_file()
    r = _cli(a, src, "-o", tmp_path / "s.tif", *tile, "--stats", tmp_path / "g.stats.json")
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(read(tmp_path / "s.tif"), read(tmp_path / "g.tif"))
    r = _cli(a, src, "-o", tmp_path / "w.tif", *tile, "--norm", "window")
    assert r.exit_code == 0, r.output
    assert np.abs(read(tmp_path / "w.tif").astype(int) - read(tmp_path / "g.tif")).max() > 0
    r = _cli(b, src, "-o", tmp_path / "x.tif", *tile, "--stats", tmp_path / "g.stats.json")
    assert "another model" in cli_error(r, alone=True)
    assert not (tmp_path / "x.tif").exists()
    r = _cli(a, src, "-o", tmp_path / "g.tif", *tile, "--save-stats")
    assert r.exit_code != 0 and "already exists" in r.stderr
