"""Spectral fidelity in ``geogan evaluate``: SAM, ERGAS, bias, NDVI and ``--error-map``.

Known answers on constructed rasters: SAM of identical rasters and of a scaled copy is 0,
of two constructed spectra the angle between them; ERGAS and the NDVI differences of
constructed bands; nodata, masks and the AOI excluded; the error map on REFERENCE's grid.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import rasterio
from conftest import cli_error, listing, make_raster_array, run_cli
from rasterio.enums import ColorInterp
from rasterio.transform import from_origin

from geogan.errors import InputError, OutputError
from geogan.evaluate import EvaluateConfig, evaluate
from geogan.metrics import ergas, normalized_difference, spectral_angles
from geogan.provenance import DESCRIPTION_TAG, read_provenance

# -- the maths ------------------------------------------------------------------------------


def test_spectral_angle_of_constructed_spectra():
    x = np.array([[1.0, 3.0, 1.0, 0.0, 2.0], [0.0, 4.0, 0.0, 0.0, 2.0]])
    y = np.array([[1.0, 6.0, 0.0, 1.0, -2.0], [1.0, 8.0, 1.0, 1.0, -2.0]])
    angles, defined = spectral_angles(x, y)
    assert defined.tolist() == [True, True, True, False, True]
    assert angles[defined] == pytest.approx([45.0, 0.0, 90.0, 180.0], abs=1e-5)


def test_ergas_and_normalised_difference_known_answers():
    # RMSE 1 and 2 on bands of mean 10 and 20: 100 * sqrt((0.1^2 + 0.1^2) / 2) = 10
    assert ergas(np.array([1.0, 2.0]), np.array([10.0, 20.0])) == pytest.approx(10.0)
    assert ergas(np.array([1.0, 2.0]), np.array([10.0, 20.0]), ratio=0.25) == pytest.approx(2.5)
    assert ergas(np.array([1.0]), np.array([0.0])) is None
    nd, ok = normalized_difference(np.array([10.0, 0.0, 30.0]), np.array([30.0, 0.0, 10.0]))
    assert ok.tolist() == [True, False, True] and nd[ok] == pytest.approx([0.5, -0.5])


# -- through evaluate -------------------------------------------------------------------------


def _float(data: np.ndarray) -> np.ndarray:
    return np.asarray(data, dtype=np.float32)


def test_identical_rasters_and_a_scaled_copy_have_no_spectral_angle(make_raster):
    data = make_raster_array(40, 30, 4, "float32", 0) + 100.0  # positive spectra
    a = make_raster("a.tif", data=_float(data))
    same = evaluate(a, make_raster("b.tif", data=_float(data)),
                    EvaluateConfig(red=1, nir=4)).scores[0]
    assert same.sam == pytest.approx(0.0, abs=1e-5) and same.ergas == 0.0 and same.bias == 0.0
    assert same.ndvi is not None and same.ndvi.rmse == 0.0 and same.ndvi.changed == 0.0
    scaled = evaluate(make_raster("c.tif", data=_float(2.5 * data)), a,
                      EvaluateConfig(red=1, nir=4)).scores[0]
    assert scaled.sam == pytest.approx(0.0, abs=1e-5)
    assert scaled.sam_pixels == 40 * 30
    # NDVI is a ratio: a brighter copy has the same index
    assert scaled.ndvi is not None and scaled.ndvi.rmse == pytest.approx(0.0, abs=1e-6)
    y = data.reshape(4, -1).astype(np.float64)
    rmse = np.sqrt(((1.5 * y) ** 2).mean(axis=1))
    expected = 100 * math.sqrt(float(np.mean((rmse / y.mean(axis=1)) ** 2)))
    assert scaled.ergas == pytest.approx(expected, rel=1e-5)
    assert [b.bias for b in scaled.bands] == pytest.approx(list(1.5 * y.mean(axis=1)), rel=1e-5)


def test_sam_ergas_bias_and_ndvi_of_constructed_rasters(make_raster):
    h, w = 10, 20
    ref = np.empty((2, h, w), np.float32)
    ref[0], ref[1] = 10.0, 30.0            # red 10, NIR 30: NDVI 0.5
    pred = ref.copy()
    pred[0, :, :10] = 30.0                 # left half: (30, 30), 26.57 deg from (10, 30)
    pred[1, :, 10:] = 50.0                 # right half: (10, 50): NDVI 2/3
    report = evaluate(make_raster("p.tif", data=pred), make_raster("r.tif", data=ref),
                      EvaluateConfig(red=1, nir=2))
    s = report.scores[0]
    left = math.degrees(math.atan2(30, 10) - math.atan2(30, 30))
    right = math.degrees(math.atan2(50, 10) - math.atan2(30, 10))
    assert s.sam == pytest.approx((left + right) / 2, rel=1e-6)
    assert [b.bias for b in s.bands] == pytest.approx([10.0, 10.0])
    rmse = math.sqrt(20.0 ** 2 / 2)  # both bands: 20 off in half the pixels
    assert s.ergas == pytest.approx(100 * math.sqrt(((rmse / 10) ** 2 + (rmse / 30) ** 2) / 2))
    d = np.array([0.0 - 0.5, 40 / 60 - 0.5])  # NDVI differences of the two halves
    assert s.ndvi is not None and s.ndvi.pixels == h * w
    assert s.ndvi.bias == pytest.approx(d.mean())
    assert s.ndvi.rmse == pytest.approx(math.sqrt((d ** 2).mean()))
    assert s.ndvi.changed == pytest.approx(1.0)   # both halves differ by more than 0.1
    assert report.ndvi_bands is not None and report.ndvi_bands.how == "given"


def test_nodata_masks_and_aoi_are_excluded_from_spectral_scores(make_raster, tmp_path):
    data = make_raster_array(40, 30, 4, "uint8", 0)
    wrong = data.copy()
    wrong[:, :10, :] = data[::-1, :10, :]          # other spectra in the top rows
    pred = make_raster("p.tif", data=wrong, nodata=0, nodata_box=(0, 10, 0, 40))
    ref = make_raster("r.tif", data=data)
    s = evaluate(pred, ref, EvaluateConfig(red=1, nir=4)).scores[0]
    assert s.sam == pytest.approx(0.0, abs=1e-5) and s.ergas == 0.0
    assert s.ndvi is not None and s.ndvi.rmse == 0.0 and s.ndvi.pixels == 20 * 40
    # the same change, kept out by --aoi: the polygon covers the lower rows only
    aoi = tmp_path / "aoi.geojson"
    with rasterio.open(ref) as ds:
        t = ds.transform
    x0, x1 = t.c, t.c + 40 * t.a
    y0, y1 = t.f + 30 * t.e, t.f + 12 * t.e
    aoi.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [
            [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}}],
        "crs": {"type": "name", "properties": {"name": "EPSG:26914"}}}))
    changed = make_raster("q.tif", data=wrong)
    assert evaluate(changed, ref, EvaluateConfig(red=1, nir=4)).scores[0].sam > 1.0
    inside = evaluate(changed, ref, EvaluateConfig(red=1, nir=4, aoi=aoi)).scores[0]
    assert inside.sam == pytest.approx(0.0, abs=1e-5) and inside.ndvi.rmse == 0.0


def test_spectral_scores_do_not_depend_on_the_block_size(make_raster):
    a = make_raster("a.tif", data=make_raster_array(70, 50, 4, "uint8", 0))
    b = make_raster("b.tif", data=make_raster_array(70, 50, 4, "uint8", 1))
    base = EvaluateConfig(red=3, nir=4, baseline="histogram-match", source=a)
    whole = evaluate(a, b, base)
    for one, other in zip(whole.scores, evaluate(a, b, EvaluateConfig(
            red=3, nir=4, baseline="histogram-match", source=a, block_size=16)).scores,
            strict=True):
        assert other.sam == pytest.approx(one.sam, rel=1e-9)
        assert other.ergas == pytest.approx(one.ergas, rel=1e-9)
        assert other.ndvi.rmse == pytest.approx(one.ndvi.rmse, rel=1e-9)
        assert other.ndvi.changed == one.ndvi.changed


def test_ndvi_bands_from_the_colour_interpretation_or_skipped(make_raster):
    data = make_raster_array(30, 20, 4, "uint8", 0)
    a = make_raster("a.tif", data=data)
    ref = make_raster("r.tif", data=make_raster_array(30, 20, 4, "uint8", 1))
    with rasterio.open(ref, "r+") as ds:
        ds.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.nir]
    report = evaluate(a, ref)
    assert (report.ndvi_bands.red, report.ndvi_bands.nir) == (1, 4)
    assert "colour interpretation of REFERENCE" in report.ndvi_bands.how
    assert report.scores[0].ndvi is not None
    # gray/undefined (as the NAIP sample): skipped with a note, not an error
    plain = evaluate(a, make_raster("s.tif", data=data))
    assert not plain.ndvi_bands.usable and plain.scores[0].ndvi is None
    assert "pass `red` and `nir`" in plain.ndvi_bands.how
    # one band: no spectral angle
    assert evaluate(a, ref, EvaluateConfig(bands=(2,))).scores[0].sam is None
    with pytest.raises(InputError, match="nir band 4 is not among the bands compared"):
        evaluate(a, ref, EvaluateConfig(bands=(1, 2, 3), red=1, nir=4))
    with pytest.raises(InputError, match="both band 2"):
        EvaluateConfig(red=2, nir=2)


# -- the command line -------------------------------------------------------------------------


def test_cli_reports_spectral_scores_in_text_and_json(make_raster):
    a = make_raster("a.tif", data=make_raster_array(30, 20, 4, "uint8", 0))
    b = make_raster("b.tif", data=make_raster_array(30, 20, 4, "uint8", 1))
    text = run_cli("evaluate", a, b, "--red", "1", "--nir", "4")
    assert text.exit_code == 0, text.output
    assert "red band 1, NIR band 4 (given)" in text.stdout
    ndvi_rows = [ln.split() for ln in text.stdout.splitlines() if ln.startswith("NDVI ")]
    assert [r[:2] for r in ndvi_rows] == [["NDVI", "prediction"]]
    done = run_cli("evaluate", a, b, "--red", "1", "--nir", "4", "--json")
    report = json.loads(done.stdout)
    s = report["scores"]["prediction"]
    assert s["sam"] > 0 and s["ergas"] > 0 and len(s["bands"]) == 4
    assert 0 <= s["ndvi"]["changed"] <= 1 and s["ndvi"]["changed_threshold"] == 0.1
    assert report["spectral"]["ndvi_bands"] == {"red": 1, "nir": 4, "identified": "given"}
    assert report["spectral"]["ergas_ratio"] == 1.0
    skipped = run_cli("evaluate", a, b)
    assert "NDVI:         skipped: no compared band is marked red and NIR" in skipped.stdout
    assert "--red and --nir" in skipped.stdout  # the note names the CLI's flags
    line = cli_error(run_cli("evaluate", a, b, "--bands", "1,2", "--nir", "4"))
    assert line.startswith("Error: --nir band 4 is not among the bands compared (1,2)")


def test_error_map_on_the_reference_grid_with_nodata_and_provenance(make_raster, tmp_path):
    data = make_raster_array(40, 30, 3, "uint8", 0)
    # REFERENCE on a larger grid, shifted by whole pixels: the map follows its grid
    big = np.zeros((3, 40, 50), np.uint8)
    big[:, 4:34, 6:46] = make_raster_array(40, 30, 3, "uint8", 1)
    pred = make_raster("p.tif", data=data, nodata=0, nodata_box=(0, 5, 0, 5))
    ref = make_raster("r.tif", data=big, nodata=0,
                      transform=from_origin(485900.0 - 6 * 5, 5209247.0 + 4 * 5, 5.0, 5.0))
    out = tmp_path / "maps" / "err.tif"
    done = run_cli("evaluate", pred, ref, "--error-map", out, "--resampling", "nearest")
    assert done.exit_code == 0, done.output
    assert f"error map:    {out}" in done.stdout
    with rasterio.open(out) as m, rasterio.open(ref) as r:
        assert (m.crs, m.transform, m.width, m.height) == (r.crs, r.transform, r.width, r.height)
        assert m.count == 4 and m.dtypes[0] == "float32" and m.nodata == -1.0
        assert m.descriptions[-1] == "spectral angle (degrees)"
        errors = m.read()
        tags = m.tags()
    assert read_provenance(tags) is not None and "generated by geogan" in tags[DESCRIPTION_TAG]
    core = errors[:, 4:34, 6:46]
    expected = np.abs(data.astype(np.float64) - big[:, 4:34, 6:46])
    assert np.allclose(core[:3, 5:, 5:], expected[:, 5:, 5:])
    angles, _ = spectral_angles(data[:, 10, 10:12].astype(float), big[:, 14, 16:18].astype(float))
    assert np.allclose(core[3, 10, 10:12], angles, atol=1e-4)
    assert (core[:, :5, :5] == -1).all()              # the prediction's nodata
    assert (errors[:, :4, :] == -1).all() and (errors[:, :, :6] == -1).all()  # outside it
    # refused without --overwrite, the map untouched; replaced with it
    before = out.read_bytes()
    line = cli_error(run_cli("evaluate", pred, ref, "--error-map", out))
    assert str(out) in line and "--overwrite" in line and out.read_bytes() == before
    again = run_cli("evaluate", pred, ref, "--error-map", out, "--overwrite")
    assert again.exit_code == 0, again.output
    assert listing(out.parent) == ["err.tif"]


def test_error_map_never_replaces_an_input_and_leaves_nothing_on_failure(make_raster, tmp_path,
                                                                         monkeypatch):
    a = make_raster("a.tif", data=make_raster_array(40, 30, 3, "uint8", 0))
    b = make_raster("b.tif", data=make_raster_array(40, 30, 3, "uint8", 1))
    before = b.read_bytes()
    cli_error(run_cli("evaluate", a, b, "--error-map", b, "--overwrite"))
    assert b.read_bytes() == before
    # no valid pixel: the error, and no map
    out = tmp_path / "out" / "err.tif"
    empty = make_raster("e.tif", data=np.zeros((3, 30, 40), np.uint8), nodata=0)
    cli_error(run_cli("evaluate", a, empty, "--error-map", out))
    assert not out.exists()
    # a write that fails half-way: an OutputError naming the map, nothing left behind
    import geogan.evaluate.errormap as errormap

    real, calls = errormap.error_block, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(errormap, "error_block", failing)
    with pytest.raises(OutputError, match="err.tif"):
        evaluate(a, b, EvaluateConfig(error_map=out, block_size=16))
    assert len(calls) == 3 and listing(out.parent) == []


def test_ergas_ratio_is_the_pixel_size_ratio_when_the_reference_is_resampled(make_raster):
    fine = make_raster("fine.tif", data=make_raster_array(40, 30, 3, "uint8", 0))
    coarse = make_raster("coarse.tif", data=make_raster_array(20, 15, 3, "uint8", 1),
                         transform=from_origin(485900.0, 5209247.0, 10.0, 10.0))
    same = evaluate(fine, make_raster("b.tif", data=make_raster_array(40, 30, 3, "uint8", 1)))
    assert same.ergas_ratio == 1.0 and not same.reference_resampled
    report = evaluate(fine, coarse)
    assert report.reference_resampled and report.ergas_ratio == pytest.approx(0.5)
    s = report.scores[0]
    rmse = np.array([b.rmse for b in s.bands])
    # ERGAS = 100 * ratio * sqrt(mean_b (RMSE_b / mean_b)^2): half of the same sum at ratio 1
    means = _ref_means(fine, coarse)
    assert s.ergas == pytest.approx(0.5 * 100 * math.sqrt(np.mean((rmse / means) ** 2)))


def _ref_means(fine, coarse) -> np.ndarray:
    """The coarse reference's band means on the fine grid (bilinear, as evaluate reads it)."""
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    with rasterio.open(fine) as f, rasterio.open(coarse) as c, WarpedVRT(
            c, crs=f.crs, transform=f.transform, width=f.width, height=f.height,
            resampling=Resampling.bilinear, add_alpha=True) as vrt:
        data = vrt.read().astype(np.float64)
    valid = data[-1] > 0
    return data[:-1][:, valid].mean(axis=1)
