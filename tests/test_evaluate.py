"""geogan.evaluate: paired metrics over valid pixels, grid alignment, AOI, baseline."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import GEOGRAPHIC, PROJECTED, make_raster_array

from geogan.errors import InputError
from geogan.evaluate import (
    SSIM_K1,
    SSIM_K2,
    SSIM_RADIUS,
    SSIM_SIGMA,
    EvaluateConfig,
    evaluate,
)


def _data(width: int = 40, height: int = 30, count: int = 3, seed: int = 0) -> np.ndarray:
    """uint8 data in 10..200, so small perturbations never clip."""
    unit = make_raster_array(width, height, count, "float64", seed)
    unit = (unit - unit.min()) / np.ptp(unit)
    return (10 + unit * 190).round().astype(np.uint8)


def _brute_force_ssim(x: np.ndarray, y: np.ndarray, valid: np.ndarray, L: float) -> float:
    """Mean SSIM over valid pixels, computing each window explicitly (slow, obvious)."""
    r = SSIM_RADIUS
    g = np.exp(-0.5 * (np.arange(-r, r + 1) / SSIM_SIGMA) ** 2)
    g2 = np.outer(g, g)
    c1, c2 = (SSIM_K1 * L) ** 2, (SSIM_K2 * L) ** 2
    h, w = x.shape
    values = []
    for i in range(h):
        for j in range(w):
            if not valid[i, j]:
                continue
            ws, xs, ys = [], [], []
            for di in range(-r, r + 1):
                for dj in range(-r, r + 1):
                    ii, jj = i + di, j + dj
                    if 0 <= ii < h and 0 <= jj < w and valid[ii, jj]:
                        ws.append(g2[di + r, dj + r])
                        xs.append(float(x[ii, jj]))
                        ys.append(float(y[ii, jj]))
            wa = np.array(ws) / np.sum(ws)
            xa, ya = np.array(xs), np.array(ys)
            mx, my = (wa * xa).sum(), (wa * ya).sum()
            vx, vy = (wa * (xa - mx) ** 2).sum(), (wa * (ya - my) ** 2).sum()
            cov = (wa * (xa - mx) * (ya - my)).sum()
            values.append((2 * mx * my + c1) * (2 * cov + c2)
                          / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


@pytest.mark.parametrize("crs", [PROJECTED, GEOGRAPHIC])
def test_identical_rasters_score_perfectly(make_raster, crs):
    data = _data(37, 23)
    a = make_raster("a.tif", crs=crs, data=data, nodata=0)
    b = make_raster("b.tif", crs=crs, data=data, nodata=0)
    report = evaluate(a, b)
    best = report.scores[0]
    assert report.valid_pixels == 37 * 23 == report.grid_pixels
    assert not report.reference_resampled
    assert best.rmse == 0.0 and best.accuracy == 1.0
    assert best.ssim == pytest.approx(1.0, abs=1e-12)
    assert math.isinf(best.psnr)
    assert all(b.rmse == 0 and b.ssim == pytest.approx(1.0, abs=1e-12) for b in best.bands)
    assert report.to_json()["scores"]["prediction"]["psnr"] is None


def test_known_perturbation_gives_expected_rmse_psnr_and_accuracy(make_raster):
    ref = _data(40, 30)
    pred = ref.astype(np.int16)
    pred[0] += 3  # band 1: every pixel off by 3
    checker = (np.indices((30, 40)).sum(axis=0) % 2) == 0
    pred[1][checker] -= 4  # band 2: half the pixels off by 4
    n, k = 40 * 30, int(checker.sum())
    a = make_raster("pred.tif", data=pred.astype(np.uint8))
    b = make_raster("ref.tif", data=ref)
    report = evaluate(a, b)
    s = report.scores[0]
    mse = np.array([9.0, 16.0 * k / n, 0.0])
    assert [bs.rmse for bs in s.bands] == pytest.approx(np.sqrt(mse).tolist(), abs=1e-12)
    assert s.rmse == pytest.approx(math.sqrt(mse.mean()), abs=1e-12)
    assert s.bands[0].psnr == pytest.approx(20 * math.log10(255 / 3), abs=1e-9)
    assert s.psnr == pytest.approx(10 * math.log10(255**2 / mse.mean()), abs=1e-9)
    assert math.isinf(s.bands[2].psnr)
    assert s.accuracy == 1.0  # largest difference is 4 < 5
    assert s.bands[0].ssim < 1.0 and s.bands[1].ssim < 1.0
    strict = evaluate(a, b, EvaluateConfig(delta=4)).scores[0]
    assert strict.accuracy == pytest.approx(1 - k / n)  # |4| < 4 fails
    assert [bs.accuracy for bs in strict.bands] == pytest.approx([1.0, 1 - k / n, 1.0])
    only2 = evaluate(a, b, EvaluateConfig(bands=(2,))).scores[0]
    assert only2.rmse == pytest.approx(math.sqrt(16.0 * k / n), abs=1e-12)
    assert only2.bands[0].band == 2


def test_ssim_matches_a_brute_force_masked_computation(make_raster):
    ref = _data(19, 16, count=1, seed=1)
    pred = _data(19, 16, count=1, seed=2)
    pred[:, 4:9, 6:11] = 0  # nodata hole in the prediction
    a = make_raster("pred.tif", data=pred, nodata=0)
    b = make_raster("ref.tif", data=ref, nodata=0)
    report = evaluate(a, b)
    valid = pred[0] != 0
    assert report.valid_pixels == int(valid.sum())
    expected = _brute_force_ssim(pred[0], ref[0], valid, 255.0)
    assert report.scores[0].ssim == pytest.approx(expected, rel=1e-9)
    assert 0 < report.scores[0].ssim < 0.99


def test_block_size_does_not_change_results(make_raster):
    a = make_raster("pred.tif", data=_data(53, 41, seed=3), nodata=0, nodata_box=(5, 12, 20, 33))
    b = make_raster("ref.tif", data=_data(53, 41, seed=4))
    whole = evaluate(a, b).to_json()["scores"]
    tiled = evaluate(a, b, EvaluateConfig(block_size=16)).to_json()["scores"]
    for name in whole:
        for key in ("rmse", "ssim", "accuracy", "psnr"):
            assert tiled[name][key] == pytest.approx(whole[name][key], rel=1e-12)


def test_nodata_pixels_are_excluded(make_raster):
    ref = _data(40, 30)
    pred = ref.copy()
    pred[:, 0:10, 0:10] = 0  # prediction nodata
    wrong_ref = ref.copy()
    wrong_ref[:, 20:30, 30:40] = 0  # reference nodata
    pred[:, 20:30, 30:40] = 255  # values that would be wrong if counted
    a = make_raster("pred.tif", data=pred, nodata=0)
    b = make_raster("ref.tif", data=wrong_ref, nodata=0)
    report = evaluate(a, b)
    assert report.valid_pixels == 40 * 30 - 100 - 100
    s = report.scores[0]
    assert s.rmse == 0.0 and s.accuracy == 1.0
    assert s.ssim == pytest.approx(1.0, abs=1e-12)  # windows ignore the nodata neighbours


def test_nodata_only_when_all_bands_equal_nodata(make_raster):
    ref = _data(20, 20)
    pred = ref.copy()
    pred[0, 0, :] = 0  # only band 1 is 0: still a valid (dark) pixel
    a = make_raster("pred.tif", data=pred, nodata=0)
    b = make_raster("ref.tif", data=ref, nodata=0)
    report = evaluate(a, b)
    assert report.valid_pixels == 400
    assert report.scores[0].bands[0].rmse > 0


def test_float_nodata_and_data_range(make_raster):
    ref = make_raster_array(30, 20, 1, "float32", 0)
    pred = ref + np.float32(0.5)
    pred[0, :5, :5] = -9999
    a = make_raster("pred.tif", data=pred, nodata=-9999)
    b = make_raster("ref.tif", data=ref, nodata=-9999)
    report = evaluate(a, b)
    assert report.valid_pixels == 600 - 25
    assert report.scores[0].rmse == pytest.approx(0.5, abs=1e-5)
    valid = ref[0][pred[0] != -9999]
    assert report.data_range[0] == pytest.approx(float(valid.max() - valid.min()), rel=1e-6)
    assert report.delta[0] == pytest.approx(5 / 255 * report.data_range[0])


def test_reference_on_a_shifted_larger_grid_is_aligned(make_raster):
    from rasterio.transform import from_origin

    big = _data(50, 40, seed=5)
    a = make_raster("pred.tif", data=big[:, 7:37, 4:44], nodata=0,
                    transform=from_origin(485900.0 + 4 * 5, 5209247.0 - 7 * 5, 5, 5))
    b = make_raster("ref.tif", data=big, nodata=0,
                    transform=from_origin(485900.0, 5209247.0, 5, 5))
    for resampling in ("nearest", "bilinear"):
        report = evaluate(a, b, EvaluateConfig(resampling=resampling))
        assert report.reference_resampled
        assert report.valid_pixels == 30 * 40
        assert report.scores[0].rmse == 0.0


def test_reference_at_coarser_resolution_is_resampled(make_raster):
    from rasterio.transform import from_origin

    coarse = _data(20, 15, seed=6)
    fine = np.repeat(np.repeat(coarse, 2, axis=1), 2, axis=2)  # each pixel -> 2x2 block
    a = make_raster("pred.tif", data=fine, transform=from_origin(485900.0, 5209247.0, 5, 5))
    b = make_raster("ref.tif", data=coarse, transform=from_origin(485900.0, 5209247.0, 10, 10))
    report = evaluate(a, b, EvaluateConfig(resampling="nearest"))
    assert report.reference_resampled and report.valid_pixels == 40 * 30
    assert report.scores[0].rmse == 0.0


def test_reference_without_nodata_counts_only_its_footprint(make_raster):
    from rasterio.transform import from_origin

    data = _data(40, 30, seed=7)
    a = make_raster("pred.tif", data=data, transform=from_origin(485900.0, 5209247.0, 5, 5))
    # covers only the prediction's right 25 columns and has no nodata value
    b = make_raster("ref.tif", data=data[:, :, 15:],
                    transform=from_origin(485900.0 + 15 * 5, 5209247.0, 5, 5))
    report = evaluate(a, b, EvaluateConfig(resampling="nearest"))
    assert report.valid_pixels == 30 * 25
    assert report.scores[0].rmse == 0.0


def test_reference_in_another_crs_is_reprojected(make_raster, tmp_path):
    import rasterio
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    def smooth(phase: float) -> np.ndarray:
        yy, xx = np.mgrid[0:50, 0:60]
        return np.stack([100 + 80 * np.sin(xx / 6 + b + phase) * np.cos(yy / 5 - phase)
                         for b in range(3)]).round().astype(np.uint8)

    data = smooth(0.0)
    a = make_raster("pred.tif", data=data, nodata=0)
    with rasterio.open(a) as src:
        transform, width, height = calculate_default_transform(
            src.crs, GEOGRAPHIC, src.width, src.height, *src.bounds)
        out = np.zeros((3, height, width), dtype=np.uint8)
        reproject(data, out, src_transform=src.transform, src_crs=src.crs,
                  dst_transform=transform, dst_crs=GEOGRAPHIC, resampling=Resampling.bilinear,
                  dst_nodata=0)
    b = make_raster("ref_4326.tif", data=out, crs=GEOGRAPHIC, transform=transform, nodata=0)
    c = make_raster("other.tif", data=smooth(1.5), nodata=0)
    report = evaluate(a, b)
    unrelated = evaluate(a, c)
    assert report.reference_resampled
    assert report.valid_pixels > 0.8 * 60 * 50
    # two bilinear resamplings of a smooth image: about 1 grey level off, structure intact
    assert report.scores[0].rmse < 2.0 < 0.1 * unrelated.scores[0].rmse
    assert report.scores[0].ssim > 0.98 > 0.5 > unrelated.scores[0].ssim


def test_aoi_limits_the_pixels_and_is_reprojected(make_raster, tmp_path):
    import geopandas as gpd
    from shapely.geometry import box

    ref = _data(40, 30)
    pred = ref.copy()
    pred[:, :, 20:] = np.clip(pred[:, :, 20:].astype(int) + 40, 0, 255)  # right half is wrong
    a = make_raster("pred.tif", data=pred)
    b = make_raster("ref.tif", data=ref)
    x0, y1 = 485900.0, 5209247.0
    # pixel columns 0..19 and rows 5..24: edges on pixel boundaries
    aoi = box(x0, y1 - 25 * 5, x0 + 20 * 5, y1 - 5 * 5)
    path = tmp_path / "aoi.geojson"
    gpd.GeoDataFrame(geometry=[aoi], crs=PROJECTED).to_crs(GEOGRAPHIC).to_file(path)
    report = evaluate(a, b, EvaluateConfig(aoi=path))
    assert report.valid_pixels == 20 * 20
    assert report.scores[0].rmse == 0.0
    assert evaluate(a, b).scores[0].rmse > 10


def test_aoi_outside_the_prediction_is_an_error(make_raster, tmp_path):
    import geopandas as gpd
    from shapely.geometry import box

    a = make_raster("pred.tif", data=_data())
    path = tmp_path / "far.gpkg"
    gpd.GeoDataFrame(geometry=[box(0, 0, 10, 10)], crs=PROJECTED).to_file(path)
    with pytest.raises(InputError, match="does not overlap"):
        evaluate(a, a, EvaluateConfig(aoi=path))


def test_histogram_match_recovers_a_monotonic_look_change(make_raster):
    source = _data(40, 30, seed=10)
    # the "other look": a strictly increasing per-band tone curve of the source
    s0, s1, s2 = source.astype(np.float64)
    ref = np.stack([np.rint(20 + 1.1 * s0), np.rint(s1 + s1**2 / 800),
                    s2 + 30]).astype(np.uint8)
    pred = source.copy()  # an untrained "translation": the source itself
    s = make_raster("src.tif", data=source)
    p = make_raster("pred.tif", data=pred)
    r = make_raster("ref.tif", data=ref)
    report = evaluate(p, r, EvaluateConfig(baseline="histogram-match", source=s))
    gan, base = report.scores
    assert (gan.name, base.name) == ("prediction", "histogram-match")
    assert base.rmse == 0.0 and base.accuracy == 1.0
    assert base.ssim == pytest.approx(1.0, abs=1e-12)
    assert gan.rmse > 5 and gan.ssim < base.ssim


def test_histogram_match_baseline_scores_the_same_pixels(make_raster):
    source = _data(30, 20, seed=11)
    ref = _data(30, 20, seed=12)
    s = make_raster("src.tif", data=source, nodata=0, nodata_box=(0, 5, 0, 30))
    p = make_raster("pred.tif", data=ref)
    r = make_raster("ref.tif", data=ref)
    report = evaluate(p, r, EvaluateConfig(baseline="histogram-match", source=s))
    assert report.valid_pixels == 30 * 15  # the source's nodata rows drop out for both rows
    gan, base = report.scores
    assert gan.rmse == 0.0
    # matched histograms: each band's matched values have the reference's distribution
    assert 0 < base.rmse and base.ssim < 0.9


def test_band_count_mismatch_is_an_error(make_raster):
    a = make_raster("a.tif", data=_data(count=3))
    b = make_raster("b.tif", data=_data(count=4))
    with pytest.raises(InputError, match="pass --bands"):
        evaluate(a, b)
    assert evaluate(a, b, EvaluateConfig(bands=(1, 2))).scores[0].bands[1].band == 2


def test_no_overlap_and_no_valid_pixels_are_errors(make_raster):
    from rasterio.transform import from_origin

    a = make_raster("a.tif", data=_data())
    far = make_raster("far.tif", data=_data(), transform=from_origin(0, 0, 5, 5))
    with pytest.raises(InputError, match="does not overlap"):
        evaluate(a, far)
    empty = make_raster("empty.tif", data=np.zeros((3, 30, 40), np.uint8), nodata=0)
    with pytest.raises(InputError, match="no pixel is valid"):
        evaluate(a, empty)


@pytest.mark.parametrize("kwargs, message", [
    ({"baseline": "histogram-match"}, "needs --source"),
    ({"source": "x.tif"}, "only used by a baseline"),
    ({"bands": (0, 1)}, "start at 1"),
    ({"bands": (1, 1)}, "repeats"),
    ({"delta": 0}, "--delta"),
    ({"resampling": "lanczos9"}, "--resampling"),
])
def test_config_rejects_bad_options(kwargs, message):
    with pytest.raises(InputError, match=message):
        EvaluateConfig(**kwargs)


def test_report_table_lists_every_row(make_raster):
    a = make_raster("a.tif", data=_data())
    b = make_raster("b.tif", data=_data(seed=1))
    report = evaluate(a, b, EvaluateConfig(baseline="histogram-match", source=a))
    table = report.format_table()
    lines = [line for line in table.splitlines() if line.startswith(("prediction ",
                                                                     "histogram-match "))]
    assert len(lines) == 2 * (1 + 3)
    assert f"{report.scores[1].rmse:.4f}" in table


def test_histogram_match_on_float_data_is_accurate_to_the_bin_width(make_raster):
    source = make_raster_array(40, 30, 1, "float32", 13)
    ref = (2.5 * source + 100).astype(np.float32)  # an affine look change
    s = make_raster("src.tif", data=source, nodata=-9999, nodata_box=(0, 3, 0, 40))
    r = make_raster("ref.tif", data=ref, nodata=-9999)
    report = evaluate(r, r, EvaluateConfig(baseline="histogram-match", source=s))
    assert report.valid_pixels == 40 * 27
    span = report.data_range[0]
    assert report.scores[1].rmse < 2 * span / 65535
    assert report.scores[1].ssim == pytest.approx(1.0, abs=1e-6)


def test_progress_reaches_the_total_and_cancel_stops(make_raster):
    from geogan.errors import Cancelled

    a = make_raster("a.tif", data=_data(40, 30))
    calls = []
    evaluate(a, a, EvaluateConfig(block_size=16, baseline="histogram-match", source=a),
             progress=lambda done, total, **info: calls.append((done, total, info["stage"])))
    blocks = 3 * 2  # 40x30 in 16-px blocks
    assert [c[0] for c in calls] == list(range(1, 3 * blocks + 1))
    assert {c[1] for c in calls} == {3 * blocks}
    assert [c[2] for c in calls[::blocks]] == ["scan", "histograms", "metrics"]
    with pytest.raises(Cancelled):
        evaluate(a, a, cancel=lambda: True)
