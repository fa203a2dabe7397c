"""The demo end to end on the real sample orthophotos, with a tiny schedule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from PIL import Image

from geogan.checkpoint import load_generator, read_metadata, save_inference_checkpoint
from geogan.cli import main
from geogan.demo import PRETRAINED_NAME, DemoConfig, default_data_dir, run_demo

SAMPLE = default_data_dir()


def _assert_same_grid(out: Path, ref: Path) -> None:
    with rasterio.open(out) as o, rasterio.open(ref) as r:
        assert o.crs == r.crs
        assert o.transform.almost_equals(r.transform, precision=1e-9)
        assert (o.width, o.height, o.count) == (r.width, r.height, r.count)
        assert o.nodata == r.nodata
        assert o.dtypes == r.dtypes
        out_mask = (o.read() == o.nodata).all(axis=0)
        in_mask = (r.read() == r.nodata).all(axis=0)
        np.testing.assert_array_equal(out_mask, in_mask)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("demo") / "out"
    config = DemoConfig(output=out, steps=2, chip=64, batch_size=2, ngf=4, ndf=8, tile=256,
                        overlap=32, device="cpu")
    return run_demo(config)


def test_demo_outputs_are_georeferenced_like_the_input(demo_run) -> None:
    source = SAMPLE / "naip_2009.tif"
    assert demo_run.translated.is_file()
    _assert_same_grid(demo_run.translated, source)
    meta = read_metadata(demo_run.checkpoint)
    assert meta["step"] == 2
    assert meta["domains"]["a"]["name"] == "2009"


def test_demo_preview_shows_four_panels(demo_run) -> None:
    with Image.open(demo_run.preview) as img, rasterio.open(SAMPLE / "naip_2009.tif") as src:
        assert img.mode == "RGB"
        panel_w = min(640, src.width)
        assert img.width == 4 * panel_w + 3 * 8
        pixels = np.asarray(img)
    # each panel holds imagery, not a blank canvas
    for i in range(4):
        panel = pixels[30:, i * (panel_w + 8):i * (panel_w + 8) + panel_w]
        assert panel.std() > 5


def test_the_preview_s_fourth_panel_colours_the_confidence(tmp_path: Path) -> None:
    from geogan.demo import _preview, confidence_colours

    ramp = confidence_colours(np.array([[0.0, 0.5, 1.0, np.nan]], np.float32))
    assert ramp[:, 0, 0].tolist() == [0xD7, 0x19, 0x1C]  # red: guessing
    assert ramp[:, 0, 2].tolist() == [0x1A, 0x96, 0x41]  # green: sure
    assert ramp[:, 0, 3].tolist() == [255, 255, 255]  # nodata: white
    source = SAMPLE / "naip_2009.tif"
    with rasterio.open(source) as src:
        profile = dict(src.profile, count=1, dtype="float32", nodata=float("nan"))
        conf = np.tile(np.linspace(0, 1, src.width, dtype=np.float32), (src.height, 1))
        conf[src.dataset_mask() == 0] = np.nan
    path = tmp_path / "c.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(conf, 1)
    _preview(source, source, SAMPLE / "naip_2020.tif", tmp_path / "p.png", path)
    with Image.open(tmp_path / "p.png") as img:
        w = min(640, conf.shape[1])
        assert img.width == 4 * w + 3 * 8
        fourth = np.asarray(img)[100, 3 * (w + 8):]
    assert fourth[5, 0] > 150 and fourth[5, 1] < 100  # red on the left (0)
    assert fourth[-5, 1] > 100 and fourth[-5, 0] < 100  # green on the right (1)


def _held_out(translated: Path) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The demo's held-out comparison rebuilt from the rasters with rasterio alone: the
    2009 input and ``translated`` (float, bands 1-4), the 2020 reference resampled
    bilinearly onto the input's grid, and the pixels valid in all three in the eastern half."""
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    with rasterio.open(SAMPLE / "naip_2009.tif") as src, rasterio.open(translated) as out, \
            rasterio.open(SAMPLE / "naip_2020.tif") as ref, \
            WarpedVRT(ref, crs=src.crs, transform=src.transform, width=src.width,
                      height=src.height, resampling=Resampling.bilinear) as vrt:
        data = {"untranslated 2009": src.read(), "prediction": out.read(), "ref": vrt.read()}
        # GDAL's rule: a pixel is nodata where all its bands hold the nodata value
        valid = np.logical_and.reduce([(data[k] != ds.nodata).any(axis=0) for k, ds in (
            ("untranslated 2009", src), ("prediction", out), ("ref", vrt))])
    valid[:, :valid.shape[1] // 2] = False  # the eastern half starts at the middle column
    reference = data.pop("ref").astype(np.float64)
    return {k: v.astype(np.float64) for k, v in data.items()}, reference, valid


def _masked_ssim(x: np.ndarray, y: np.ndarray, valid: np.ndarray, data_range: float) -> float:
    """Mean SSIM of two bands over ``valid`` (Wang et al. 2004: 11x11 Gaussian window of
    sigma 1.5), each window's weights renormalised over its valid pixels."""
    t = np.arange(-5, 6)
    kernel = np.exp(-0.5 * (t / 1.5) ** 2)
    kernel /= kernel.sum()

    def blur(a: np.ndarray) -> np.ndarray:  # zero beyond the edges
        h, w = a.shape
        padded = np.pad(a, 5)
        rows = sum(k * padded[i:i + h] for i, k in enumerate(kernel))
        return sum(k * rows[:, i:i + w] for i, k in enumerate(kernel))

    m = valid.astype(np.float64)
    w = np.where(valid, blur(m), 1.0)
    mx, my = blur(x * m) / w, blur(y * m) / w
    vx, vy = blur(x * x * m) / w - mx ** 2, blur(y * y * m) / w - my ** 2
    cov = blur(x * y * m) / w - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ssim = (2 * mx * my + c1) * (2 * cov + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return float(ssim[valid].mean())


def test_demo_metrics_score_held_out_half(demo_run) -> None:
    metrics = json.loads(demo_run.metrics.read_text())
    scores = metrics["scores"]
    assert set(scores) == {"prediction", "histogram-match", "untranslated 2009"}
    rows, reference, valid = _held_out(demo_run.translated)
    assert metrics["valid_pixels"] == int(valid.sum())
    assert 0.4 * valid.size < valid.sum() < 0.55 * valid.size  # about half the raster
    # each row's scores are those of its raster against the reference on those pixels
    for name, values in rows.items():
        diff = (values - reference)[:, valid]
        mse = (diff ** 2).mean()
        assert scores[name]["rmse"] == pytest.approx(np.sqrt(mse), rel=1e-6), name
        assert scores[name]["psnr"] == pytest.approx(10 * np.log10(255.0 ** 2 / mse),
                                                     rel=1e-6), name
        assert scores[name]["accuracy"] == pytest.approx(
            (np.abs(diff).max(axis=0) < 5).mean(), abs=1e-9), name
        ssim = np.mean([_masked_ssim(values[b], reference[b], valid, 255.0) for b in range(4)])
        assert scores[name]["ssim"] == pytest.approx(ssim, rel=1e-6), name
    # matching the reference's histograms brings the 2009 colours closer (52.3 -> 46.9)
    assert scores["histogram-match"]["rmse"] < scores["untranslated 2009"]["rmse"] - 1.0
    assert demo_run.loss_plot is not None and demo_run.loss_plot.is_file()


def test_demo_texture_compares_each_raster_with_the_2020_photo(demo_run) -> None:
    from rasterio.windows import from_bounds

    from geogan.metrics import checker_energy, detail_energy

    scores = json.loads(demo_run.metrics.read_text())["scores"]
    ring = json.loads((demo_run.output / "aoi" / "east.geojson").read_text())
    xs, ys = zip(*ring["features"][0]["geometry"]["coordinates"][0], strict=True)

    def texture(path: Path) -> tuple[float, float]:
        with rasterio.open(path) as ds:  # RGB of the eastern half, on the raster's own grid
            win = from_bounds(min(xs), min(ys), max(xs), max(ys), ds.transform)
            win = win.round_offsets().round_lengths()
            x, valid = ds.read((1, 2, 3), window=win), ds.dataset_mask(window=win) > 0
        if path.name == "naip_2009.tif":
            assert (win.col_off, win.width) == (ds.width // 2, ds.width - ds.width // 2)
        return detail_energy(x, valid), checker_energy(x, valid)

    ref = texture(SAMPLE / "naip_2020.tif")
    for name, path in (("prediction", demo_run.translated),
                       ("untranslated 2009", SAMPLE / "naip_2009.tif")):
        detail, checker = texture(path)
        assert scores[name]["detail"] == pytest.approx(detail / ref[0], rel=1e-9), name
        assert scores[name]["checker"] == pytest.approx(checker / ref[1], rel=1e-9), name
    assert scores["histogram-match"]["detail"] is None


def test_demo_training_windows_stay_west_of_the_held_out_half(demo_run, tmp_path) -> None:
    from rasterio.windows import Window, bounds

    from geogan.demo import train_config
    from geogan.samplers import open_inputs

    assert not (demo_run.output / "chips").exists()  # trained from the rasters, no chips
    east = json.loads((demo_run.output / "aoi" / "east.geojson").read_text())
    east_x0 = min(x for x, _ in east["features"][0]["geometry"]["coordinates"][0])
    state = json.loads((demo_run.output / "run" / "train_state.json").read_text())
    assert Path(state["config"]["windows"]["aoi"]).name == "west.geojson"
    # the windows the demo's settings draw, in both orthophotos (whose grids differ)
    cfg = train_config(DemoConfig(chip=64), SAMPLE / "naip_2009.tif", SAMPLE / "naip_2020.tif",
                       demo_run.output / "aoi" / "west.geojson", tmp_path / "run")
    data = open_inputs(cfg.model, cfg.a, cfg.b, cfg.crop, windows=cfg.windows)
    right = {"a": [], "b": []}
    for seed in range(400):
        win_a, win_b = data.dataset.windows(seed)
        for key, sampler, win in (("a", data.dataset.a, win_a), ("b", data.dataset.b, win_b)):
            with rasterio.open(sampler.sources[win.source].path) as src:
                right[key].append(bounds(Window(win.col, win.row, 64, 64), src.transform)[2])
    for key in ("a", "b"):
        assert max(right[key]) <= east_x0 + 1e-6
        assert max(right[key]) > east_x0 - 64 * 5.0  # windows do reach the middle


def test_demo_refuses_to_replace_existing_output(demo_run) -> None:
    before = sorted(p.name for p in demo_run.output.iterdir())
    result = CliRunner().invoke(main, ["demo", "-o", str(demo_run.output), "--steps", "1"])
    assert result.exit_code != 0
    assert "already exists" in result.output and "--overwrite" in result.output
    assert sorted(p.name for p in demo_run.output.iterdir()) == before


def test_inference_checkpoint_translates_like_the_full_one(demo_run, tmp_path: Path) -> None:
    import torch

    small = save_inference_checkpoint(demo_run.checkpoint, tmp_path / "small.safetensors")
    assert small.stat().st_size < demo_run.checkpoint.stat().st_size
    assert "discriminators" not in read_metadata(small)
    x = torch.rand(1, 4, 32, 32) * 2 - 1
    for direction in ("a2b", "b2a"):
        full = load_generator(demo_run.checkpoint, direction)
        lite = load_generator(small, direction)
        with torch.no_grad():
            torch.testing.assert_close(full.module(x), lite.module(x))
        assert lite.in_norm == full.in_norm and lite.out_norm == full.out_norm


def test_pretrained_model_is_shipped_small_and_loads() -> None:
    path = SAMPLE / PRETRAINED_NAME
    assert path.is_file() and path.with_suffix(".json").is_file()
    assert path.stat().st_size < 10 * 1024 * 1024
    gen = load_generator(path, "a2b")
    assert gen.in_bands == 4 and gen.out_bands == 4
    assert gen.checkpoint.domains["b"].name == "2020"


def test_pretrained_demo_beats_histogram_matching_on_rmse(tmp_path: Path) -> None:
    result = run_demo(DemoConfig(output=tmp_path / "pretrained", pretrained=True,
                                 device="cpu"))
    _assert_same_grid(result.translated, SAMPLE / "naip_2009.tif")
    with rasterio.open(result.translated) as dst:  # no valid pixel reads as nodata in any band
        valid = dst.dataset_mask() > 0
        assert valid.any()
        for band in range(1, dst.count + 1):
            assert ((dst.read(band) == dst.nodata) & valid).sum() == 0, band
            assert (dst.read_masks(band) > 0)[valid].all(), band
    scores = result.scores["scores"]
    # measured: 43.3 (GAN) vs 46.9 (histogram matching) vs 52.3 (untranslated)
    assert scores["prediction"]["rmse"] < scores["histogram-match"]["rmse"] - 1.0
    assert scores["prediction"]["rmse"] < scores["untranslated 2009"]["rmse"] - 5.0
    assert result.loss_plot is None and not (result.output / "chips").exists()
    _assert_spectral_scores(result.scores, result.translated)
    assert result.confidence is not None and result.confidence.with_suffix(".qml").is_file()
    with rasterio.open(result.confidence) as conf, rasterio.open(result.translated) as dst:
        assert (conf.transform, conf.shape) == (dst.transform, dst.shape)
        values = conf.read(1)
        assert np.array_equal(np.isnan(values), dst.dataset_mask() == 0)
        assert conf.tags()["GEOGAN_CONFIDENCE_MEASURE"] == "cycle"
        assert 0.2 < float(np.nanmean(values)) < 0.9  # familiar ground: about 0.5 (SCALES)


def _assert_spectral_scores(metrics: dict, translated: Path) -> None:
    """metrics.json's SAM, ERGAS, bias and NDVI rows are those numpy computes on the whole
    held-out arrays (geogan accumulates them block by block)."""
    assert metrics["ndvi_bands"]["red"] == 1 and metrics["ndvi_bands"]["nir"] == 4
    assert "given" in metrics["ndvi_bands"]["identified"]
    rows, reference, valid = _held_out(translated)
    y = reference[:, valid]
    for name, values in rows.items():
        x = values[:, valid]
        row = metrics["scores"][name]
        cos = (x * y).sum(0) / np.sqrt((x * x).sum(0) * (y * y).sum(0))
        assert row["sam"] == pytest.approx(np.degrees(np.arccos(np.clip(cos, -1, 1))).mean(),
                                           rel=1e-6), name
        rmse = np.sqrt(((x - y) ** 2).mean(axis=1))
        assert row["ergas"] == pytest.approx(
            100 * np.sqrt(((rmse / y.mean(axis=1)) ** 2).mean()), rel=1e-6), name
        assert row["bias"] == pytest.approx(list((x - y).mean(axis=1)), rel=1e-6), name
        d = (x[3] - x[0]) / (x[3] + x[0]) - (y[3] - y[0]) / (y[3] + y[0])
        assert row["ndvi_rmse"] == pytest.approx(np.sqrt((d ** 2).mean()), rel=1e-6), name
        assert row["ndvi_bias"] == pytest.approx(d.mean(), rel=1e-6), name
        assert row["ndvi_changed"] == pytest.approx((np.abs(d) > 0.1).mean(), abs=1e-9), name
    scores = metrics["scores"]
    # measured (1 thread): SAM 15.18 (GAN), 15.77 (histogram matching), 15.28 (untranslated)
    assert scores["prediction"]["sam"] < scores["histogram-match"]["sam"]
    assert scores["prediction"]["ergas"] < scores["histogram-match"]["ergas"]


def test_demo_trains_with_its_fixed_thread_count(tmp_path: Path, monkeypatch) -> None:
    """Training results depend on torch's thread count: the demo sets it (default 1)."""
    import torch

    import geogan.train

    seen: list[int] = []

    class Seen(Exception):
        pass

    def fake_train(config, progress=None, cancel=None):
        seen.append(torch.get_num_threads())
        raise Seen

    monkeypatch.setattr(geogan.train, "train", fake_train)
    before = torch.get_num_threads()
    for threads in (1, 2):
        with pytest.raises(Seen):
            run_demo(DemoConfig(output=tmp_path / f"t{threads}", threads=threads, device="cpu"))
    assert seen == [1, 2] and torch.get_num_threads() == before
    assert DemoConfig().threads == 1
    assert not (tmp_path / "t1").exists() and not (tmp_path / "t2").exists()
    result = CliRunner().invoke(main, ["demo", "-o", str(tmp_path / "t0"), "--threads", "0"])
    assert result.exit_code != 0 and not (tmp_path / "t0").exists()


def test_demo_summary_says_how_to_call_geogan_again(tmp_path: Path, monkeypatch) -> None:
    from geogan.cli._options import invoked_as

    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    script = bin_dir / "geogan"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    assert invoked_as(str(script), path="/usr/bin") == ".venv/bin/geogan"  # not on PATH
    assert invoked_as(str(script), path=str(bin_dir)) == "geogan"  # found on PATH
    assert invoked_as("/usr/lib/python3/runpy.py", path="") == "geogan"  # python -m geogan
