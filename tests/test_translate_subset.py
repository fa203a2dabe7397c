"""What a gdal_translate user expects of translate: a part of the input (--bounds, --aoi) on
its grid, an output nodata value (--nodata) and named output bands (--band-names)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import GEOGRAPHIC, PROJECTED, cli_error, make_checkpoint
from rasterio.enums import ColorInterp
from rasterio.windows import Window
from torch import nn

from geogan.checkpoint import LoadedGenerator
from geogan.cli import main
from geogan.contract.checkpoint import DomainMeta
from geogan.normalize import BandNorm

TILE = ("--tile", "32", "--overlap", "8")


def _cli(*args: object):
    return CliRunner().invoke(main, ["--progress", "none", "translate", *map(str, args)])


def _cut(src_path: Path, window: Window, dst_path: Path) -> Path:
    """``gdal_translate -srcwin``: the block ``window`` of ``src_path`` as a file of its own."""
    with rasterio.open(src_path) as src:
        profile = dict(src.profile)
        profile.update(width=int(window.width), height=int(window.height),
                       transform=src.window_transform(window))
        data = src.read(window=window)
    with rasterio.open(dst_path, "w", **profile) as dst:
        dst.write(data)
    return dst_path


def _read(path: Path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.profile, ds.dataset_mask()


@pytest.fixture
def identity(monkeypatch):
    """Checkpoint loading replaced by an identity generator (uint8, 3 bands, nodata 0)."""

    def fake_load(path, direction="a2b", device="cpu"):
        norm = BandNorm.full_range("uint8", 3, 0)
        return LoadedGenerator(nn.Identity(), direction, norm, norm)

    monkeypatch.setattr("geogan.translate.load_generator", fake_load)


# --------------------------------------------------------------------------- --bounds


@pytest.mark.parametrize(("crs", "bounds", "window"), [
    # 5 m pixels from (485900, 5209247): x 485950..486100 touches columns 10-39 (30 px),
    # y 5209050..5209200 rows 9.4..39.4, so rows 9-39 (31 px)
    (PROJECTED, (485950.0, 5209050.0, 486100.0, 5209200.0), Window(10, 9, 30, 31)),
    # 0.00081 degree pixels from (-73.25, -3.5): bounds on pixel edges cut exactly
    (GEOGRAPHIC, (-73.25 + 12 * 0.00081, -3.5 - 40 * 0.00081, -73.25 + 50 * 0.00081,
                  -3.5 - 5 * 0.00081), Window(12, 5, 38, 35)),
])
def test_bounds_translate_the_input_cut_on_its_grid(make_raster, tmp_path, tiny_checkpoint,
                                                    crs, bounds, window):
    src = make_raster("in.tif", 67, 45, crs=crs, nodata=0, nodata_box=(0, 12, 0, 14))
    out = tmp_path / "part.tif"
    result = _cli(tiny_checkpoint, src, "-o", out, *TILE, "--bounds", *bounds)
    assert result.exit_code == 0, result.output
    cut = _cut(src, window, tmp_path / "cut.tif")
    assert _cli(tiny_checkpoint, cut, "-o", tmp_path / "from_cut.tif", *TILE).exit_code == 0
    got, profile, mask = _read(out)
    want, want_profile, want_mask = _read(tmp_path / "from_cut.tif")
    with rasterio.open(src) as s:
        assert profile["transform"] == s.window_transform(window)  # offset by whole pixels
        assert (profile["transform"].a, profile["transform"].e) == (s.transform.a, s.transform.e)
        assert profile["crs"] == s.crs
    assert (profile["width"], profile["height"]) == (window.width, window.height)
    assert profile["nodata"] == want_profile["nodata"] == 0
    np.testing.assert_array_equal(got, want)  # the same as translating a pre-cut file
    np.testing.assert_array_equal(mask, want_mask)


def test_bounds_past_the_raster_are_cut_to_it_and_outside_it_fail(make_raster, tmp_path,
                                                                  identity):
    src = make_raster("in.tif", 67, 45, nodata=0)
    out = tmp_path / "edge.tif"
    result = _cli("m.safetensors", src, "-o", out, *TILE,
                  "--bounds", 486000, 5209000, 487000, 5210000)
    assert result.exit_code == 0, result.output
    got, profile, _ = _read(out)
    assert (profile["width"], profile["height"]) == (47, 45)  # columns 20-66, every row
    with rasterio.open(src) as s:
        np.testing.assert_array_equal(got, s.read(window=Window(20, 0, 47, 45)))
    far = tmp_path / "far.tif"
    line = cli_error(_cli("m.safetensors", src, "-o", far, "--bounds", 0, 0, 10, 10), alone=True)
    assert "--bounds 0 0 10 10 do not overlap" in line and "485900" in line
    assert not far.exists()
    line = cli_error(_cli("m.safetensors", src, "-o", far, "--bounds", 5, 0, 1, 10), alone=True)
    assert "--bounds" in line and "xmin < xmax" in line


@pytest.mark.parametrize("kind", ["internal mask", "alpha band"])
def test_bounds_keep_the_masks_of_the_part(make_raster, tmp_path, identity, kind):
    from conftest import make_raster_array

    valid = np.full((30, 40), 255, np.uint8)
    valid[10:20, 12:30] = 0
    if kind == "alpha band":
        data = np.concatenate([make_raster_array(40, 30), valid[None]])
        src = make_raster("in.tif", data=data, photometric="RGB", alpha="YES")
    else:
        src = make_raster("in.tif", data=make_raster_array(40, 30))
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(src, "r+") as ds:
            ds.write_mask(valid)
    window = Window(8, 5, 20, 20)
    with rasterio.open(src) as s:
        left, top = s.transform * (8, 5)
        right, bottom = s.transform * (28, 25)
        want = s.read([1, 2, 3], window=window)
    out = tmp_path / "o.tif"
    result = _cli("m.safetensors", src, "-o", out, *TILE, "--bounds", left, bottom, right, top)
    assert result.exit_code == 0, result.output
    got, profile, mask = _read(out)
    assert profile["count"] == 3 and (profile["width"], profile["height"]) == (20, 20)
    np.testing.assert_array_equal(mask, valid[window.toslices()])
    keep = mask > 0
    np.testing.assert_array_equal(got[:, keep], want[:, keep])


# --------------------------------------------------------------------------- --aoi


def _triangle_in_wgs84(path: Path) -> tuple[Path, object]:
    """A triangle over the projected test raster, written in EPSG:4326; and it in EPSG:26914."""
    import geopandas as gpd
    from shapely.geometry import Polygon

    tri = Polygon([(485960, 5209230), (486200, 5209180), (486000, 5209060)])
    frame = gpd.GeoDataFrame(geometry=[tri], crs=PROJECTED)
    frame.to_crs(GEOGRAPHIC).to_file(path)
    return path, frame.to_crs(GEOGRAPHIC).to_crs(PROJECTED).geometry.iloc[0]


def test_aoi_translates_its_block_and_masks_outside_the_polygons(make_raster, tmp_path,
                                                                 tiny_checkpoint):
    from rasterio.features import geometry_mask

    src = make_raster("in.tif", 67, 45, nodata=0)
    aoi, polygon = _triangle_in_wgs84(tmp_path / "aoi.gpkg")
    out = tmp_path / "aoi_out.tif"
    result = _cli(tiny_checkpoint, src, "-o", out, *TILE, "--aoi", aoi)
    assert result.exit_code == 0, result.output
    with rasterio.open(src) as s:
        inside = ~geometry_mask([polygon], out_shape=(45, 67), transform=s.transform,
                                all_touched=True)
    rows, cols = np.nonzero(inside)
    window = Window(cols.min(), rows.min(), cols.max() - cols.min() + 1,
                    rows.max() - rows.min() + 1)
    cut = _cut(src, window, tmp_path / "cut.tif")
    assert _cli(tiny_checkpoint, cut, "-o", tmp_path / "from_cut.tif", *TILE).exit_code == 0
    got, profile, mask = _read(out)
    want, _, _ = _read(tmp_path / "from_cut.tif")
    with rasterio.open(src) as s:
        assert profile["transform"] == s.window_transform(window) and profile["crs"] == s.crs
    keep = inside[window.toslices()]
    assert 0 < keep.sum() < keep.size  # the triangle leaves part of its block outside
    np.testing.assert_array_equal(mask > 0, keep)
    assert (got[:, ~keep] == 0).all()
    np.testing.assert_array_equal(got[:, keep], want[:, keep])


def test_aoi_without_input_nodata_masks_the_output(make_raster, tmp_path, identity):
    src = make_raster("in.tif", 67, 45)  # no nodata: outside the AOI is masked instead
    aoi, _ = _triangle_in_wgs84(tmp_path / "aoi.geojson")
    out = tmp_path / "o.tif"
    assert _cli("m.safetensors", src, "-o", out, *TILE, "--aoi", aoi).exit_code == 0
    got, profile, mask = _read(out)
    assert profile["nodata"] is None and 0 < (mask > 0).mean() < 1


def test_aoi_away_from_the_input_fails_before_writing(make_raster, tmp_path, identity):
    import geopandas as gpd
    from shapely.geometry import box

    src = make_raster("in.tif", 67, 45)
    aoi = tmp_path / "far.gpkg"
    gpd.GeoDataFrame(geometry=[box(10, 10, 11, 11)], crs=GEOGRAPHIC).to_file(aoi)
    line = cli_error(_cli("m.safetensors", src, "-o", tmp_path / "o.tif", "--aoi", aoi), alone=True)
    assert "--aoi" in line and "do not overlap" in line
    assert not (tmp_path / "o.tif").exists()


# --------------------------------------------------------------------------- --nodata


def test_nodata_value_is_written_and_valid_pixels_are_nudged_off_it(make_raster, tmp_path,
                                                                    identity):
    from conftest import make_raster_array

    data = make_raster_array(40, 30)
    data[:, 5, 5] = 7  # a valid pixel that equals the output nodata in every band
    data[:, 0:4, 0:4] = 0  # input nodata
    src = make_raster("in.tif", data=data, nodata=0)
    out = tmp_path / "o.tif"
    assert _cli("m.safetensors", src, "-o", out, *TILE, "--nodata", 7).exit_code == 0
    got, profile, mask = _read(out)
    assert profile["nodata"] == 7
    assert (got[:, 0:4, 0:4] == 7).all() and (mask[0:4, 0:4] == 0).all()
    assert not (got[:, 5, 5] == 7).all() and mask[5, 5] == 255  # nudged, still valid
    same = np.ones(mask.shape, bool)
    same[0:4, 0:4] = same[5, 5] = False
    np.testing.assert_array_equal(got[:, same], data[:, same])


def test_nodata_on_an_input_without_nodata(make_raster, tmp_path, identity):
    from conftest import make_raster_array

    data = make_raster_array(40, 30)
    data[:, 3, 3] = 255
    src = make_raster("in.tif", data=data)
    out = tmp_path / "o.tif"
    assert _cli("m.safetensors", src, "-o", out, *TILE, "--nodata", 255).exit_code == 0
    got, profile, mask = _read(out)
    assert profile["nodata"] == 255 and (mask == 255).all()  # every pixel stays valid
    assert not (got[:, 3, 3] == 255).all()
    line = cli_error(_cli("m.safetensors", src, "-o", tmp_path / "x.tif",
                          "--nodata", 300), alone=True)
    assert "--nodata 300 does not fit the output's uint8" in line
    assert not (tmp_path / "x.tif").exists()


# --------------------------------------------------------------------------- --band-names


def test_band_names_set_descriptions_and_colours(make_raster, tmp_path, identity):
    src = make_raster("in.tif", 40, 30, photometric="MINISBLACK")  # gray, undefined...
    out = tmp_path / "o.tif"
    result = _cli("m.safetensors", src, "-o", out, *TILE, "--band-names", "Red,green,blue")
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as ds:
        assert ds.colorinterp == (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
        assert ds.descriptions == ("Red", "green", "blue")
        assert ds.tags(ns="IMAGE_STRUCTURE").get("INTERLEAVE") == "PIXEL"
    out2 = tmp_path / "o2.tif"
    assert _cli("m.safetensors", src, "-o", out2, *TILE, "--band-names",
                "nir,elevation,grey").exit_code == 0
    with rasterio.open(out2) as ds:
        assert ds.colorinterp == (ColorInterp.nir, ColorInterp.undefined, ColorInterp.gray)
        assert ds.descriptions == ("nir", "elevation", "grey")
    line = cli_error(_cli("m.safetensors", src, "-o", tmp_path / "x.tif",
                          "--band-names", "red,green"), alone=True)
    assert "--band-names names 2 band(s)" in line and "writes 3" in line
    assert not (tmp_path / "x.tif").exists()


def test_band_names_come_from_the_checkpoints_target_domain(make_raster, tmp_path):
    norm = BandNorm.full_range("uint8", 3, 0).to_json()
    ckpt = make_checkpoint(tmp_path / "rgb.safetensors", meta={"domains": {
        "a": DomainMeta("a", norm),
        "b": DomainMeta("b", norm, band_names=["red", "green", "blue"])}})
    src = make_raster("in.tif", 40, 30, photometric="MINISBLACK")
    out = tmp_path / "o.tif"
    assert _cli(ckpt, src, "-o", out, *TILE).exit_code == 0
    with rasterio.open(out) as ds:
        assert ds.colorinterp == (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
        assert ds.tags(ns="IMAGE_STRUCTURE").get("INTERLEAVE") == "PIXEL"
    with rasterio.open(src) as ds:
        assert ds.colorinterp[0] == ColorInterp.gray  # what translate would copy otherwise


def test_training_records_what_the_target_bands_are(tmp_path):
    from geogan.rasterio_meta import recorded_band_names

    rgb = tmp_path / "rgb.tif"
    grid = {"crs": PROJECTED, "transform": rasterio.transform.from_origin(0, 8, 1, 1)}
    with rasterio.open(rgb, "w", driver="GTiff", width=8, height=8, count=3,
                       dtype="uint8", photometric="RGB", **grid) as dst:
        dst.write(np.zeros((3, 8, 8), np.uint8))
    assert recorded_band_names(str(rgb), 3) == ("red", "green", "blue")
    assert recorded_band_names(str(rgb), 4) is None
    plain = tmp_path / "plain.tif"
    with rasterio.open(plain, "w", driver="GTiff", width=8, height=8, count=4,
                       dtype="uint8", photometric="MINISBLACK", **grid) as dst:
        dst.write(np.zeros((4, 8, 8), np.uint8))
    assert recorded_band_names(str(plain), 4) is None  # GDAL's defaults say nothing
