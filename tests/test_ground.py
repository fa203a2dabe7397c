"""Ground resolution (geogan.ground): recorded per domain by training, shown by ``geogan info``,
checked by translate, and ``--at-model-resolution`` translating at the model's pixel size."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import cli_error
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.vrt import WarpedVRT

from geogan.cli import main
from geogan.ground import ground_resolution
from geogan.provenance import read_provenance

SAMPLE = Path(__file__).resolve().parent.parent / "geogan" / "sample_data"
TILE = ["--tile", "32", "--overlap", "8"]
TINY = ["--crop", "32", "--ngf", "4", "--ndf", "4", "--generator", "resnet_6blocks"]
#: A 1 m grid in the same UTM zone as conftest's 5 m rasters.
ONE_METRE = from_origin(485900.0, 5209247.0, 1.0, 1.0)


def _cli(*args: object):
    return CliRunner().invoke(main, ["--progress", "none", *map(str, args)])


def _ground_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "the model learned" in r.getMessage()]


def test_ground_resolution_in_metres_whatever_the_crs():
    utm = ground_resolution(CRS.from_epsg(26914), from_origin(485900, 5209247, 5, 5), 100, 100)
    assert utm == pytest.approx(5.0, rel=2e-3)  # UTM's scale factor is 0.9996 at most
    # Web Mercator's nominal 10 m are about 5 m on the ground at 60 degrees north
    merc = ground_resolution(CRS.from_epsg(3857), from_origin(0, 8399737.9, 10, 10), 100, 100)
    assert merc == pytest.approx(5.0, rel=0.01)
    assert ground_resolution(None, from_origin(0, 0, 1, 1), 10, 10) is None


def test_a_geographic_raster_gets_metres(tmp_path):
    """The bundled Landsat scene is in degrees (EPSG:4326), 0.000808 degrees a pixel at
    8 degrees south: about 90 m north-south and 89 m east-west."""
    result = _cli("info", SAMPLE / "landsat_2020.tif", "--json")
    assert result.exit_code == 0, result.output
    item = json.loads(result.stdout)["items"][0]
    assert item["geographic"] is True
    assert 85.0 < item["gsd_m"] < 95.0
    text = _cli("info", SAMPLE / "landsat_2020.tif")
    assert f"ground resolution: {item['gsd_m']:.3g} m/px" in text.output


def test_a_domain_of_mixed_resolutions_warns_and_names_res(make_raster, caplog):
    from geogan.samplers import WindowConfig, open_inputs

    coarse = make_raster("a/coarse.tif", width=64, height=64)
    fine = make_raster("a/fine.tif", width=64, height=64, transform=ONE_METRE, seed=1)
    other = make_raster("b/other.tif", width=64, height=64, seed=2)
    data = open_inputs("cyclegan", [coarse, fine], [other], 32)
    spread = [r.getMessage() for r in caplog.records if "differ in ground resolution" in
              r.getMessage()]
    assert len(spread) == 1 and spread[0].startswith("rasters of `a` ")
    assert "pass `res`" in spread[0] and "fine.tif is 1 m" in spread[0]
    assert data.a.gsd_m == pytest.approx(3.0, rel=0.01)  # the median of 1 m and 5 m
    assert data.b.gsd_m == pytest.approx(5.0, rel=0.01) and data.b.crs == "EPSG:26914"
    caplog.clear()
    data = open_inputs("cyclegan", [coarse, fine], [other], 32, windows=WindowConfig(res=5.0))
    assert not [r for r in caplog.records if "differ in ground resolution" in r.getMessage()]
    assert data.a.gsd_m == pytest.approx(5.0, rel=0.01)


def test_chips_record_their_ground_resolution(make_raster, tmp_path):
    from geogan.datasets.domains import survey_chips

    src = make_raster("ortho.tif", width=64, height=64)
    assert _cli("tile", src, "-o", tmp_path / "chips", "--size", "32").exit_code == 0
    ground = survey_chips(sorted((tmp_path / "chips").glob("*.tif")), "--a")
    assert ground.gsd_m == pytest.approx(5.0, rel=0.01) and ground.crs == "EPSG:26914"


@pytest.fixture(scope="module")
def run_5m(tmp_path_factory) -> Path:
    """A tiny CycleGAN trained one step on random windows of 5 m rasters."""
    from conftest import make_raster_array

    folder = tmp_path_factory.mktemp("run5m")
    for name, seed in (("a", 0), ("b", 1)):
        with rasterio.open(folder / f"{name}.tif", "w", driver="GTiff", width=96, height=96,
                           count=3, dtype="uint8", crs="EPSG:26914",
                           transform=from_origin(485900, 5209247, 5, 5)) as dst:
            dst.write(make_raster_array(96, 96, 3, "uint8", seed))
    out = folder / "run"
    result = _cli("train", "--a", folder / "a.tif", "--b", folder / "b.tif", "-o", out,
                  "--max-steps", "1", *TINY)
    assert result.exit_code == 0, result.output
    return out


def test_training_records_the_ground_resolution_and_info_shows_it(run_5m):
    meta = json.loads((run_5m / "model.json").read_text())
    for side in ("a", "b"):
        assert meta["domains"][side]["gsd_m"] == pytest.approx(5.0, rel=2e-3)
        assert meta["domains"][side]["crs"] == "EPSG:26914"
    result = _cli("info", run_5m)
    assert result.exit_code == 0, result.output
    assert "ground resolution: a 5 m/px (EPSG:26914), b 5 m/px (EPSG:26914)" in result.output
    data = json.loads(_cli("info", run_5m, "--json").stdout)["items"][0]
    assert data["generators"]["a2b"]["input"]["gsd_m"] == pytest.approx(5.0, rel=2e-3)


def test_translate_warns_at_another_resolution_and_translates_at_the_model_s(
        run_5m, make_raster, tmp_path, caplog):
    src = make_raster("fine.tif", width=160, height=120, transform=ONE_METRE, nodata=0,
                      nodata_box=(0, 17, 0, 23), seed=5)
    plain = tmp_path / "plain.tif"
    result = _cli("translate", run_5m, src, "-o", plain, *TILE)
    assert result.exit_code == 0, result.output
    warned = _ground_warnings(caplog)
    assert len(warned) == 1
    assert "fine.tif has 1 m pixels but the model learned a at 5 m per pixel" in warned[0]
    assert "5 times larger" in warned[0] and "`at_model_resolution`" in warned[0]

    caplog.clear()
    out = tmp_path / "at5m.tif"
    result = _cli("translate", run_5m, src, "-o", out, *TILE, "--at-model-resolution")
    assert result.exit_code == 0, result.output
    assert _ground_warnings(caplog) == []
    with rasterio.open(src) as s, rasterio.open(out) as o:
        assert (o.crs, o.transform, o.shape, o.nodata) == (s.crs, s.transform, s.shape, 0)
        assert np.array_equal(o.dataset_mask(), s.dataset_mask())
        got = o.read()
        prov = read_provenance(o)
    assert prov is not None and prov.at_model_resolution and prov.input == "fine.tif"
    assert prov.input_gsd_m == pytest.approx(1.0, rel=2e-3)
    assert prov.model_gsd_m == pytest.approx(5.0, rel=2e-3)
    assert not list(tmp_path.glob(".*"))

    # the same by hand: the input at 5 m, translated, resampled back onto the 1 m grid
    coarse, translated = tmp_path / "coarse.tif", tmp_path / "coarse_out.tif"
    with rasterio.open(src) as s:
        grid = s.transform @ s.transform.scale(5.0, 5.0)
        with WarpedVRT(s, crs=s.crs, transform=grid, width=32, height=24,
                       resampling=Resampling.average) as vrt:
            rasterio.shutil.copy(vrt, coarse, driver="GTiff")
    assert _cli("translate", run_5m, coarse, "-o", translated, *TILE).exit_code == 0
    with rasterio.open(src) as s, rasterio.open(translated) as t, \
            WarpedVRT(t, crs=s.crs, transform=s.transform, width=s.width, height=s.height,
                      resampling=Resampling.bilinear) as back:
        expected = back.read()
        valid = s.dataset_mask() != 0
    # tolerance: 1 grey level (both round the same float values to uint8)
    diff = np.abs(got.astype(int) - expected.astype(int))[:, valid]
    assert diff.max() <= 1
    assert (got[:, ~valid] == 0).all()
    with rasterio.open(plain) as p:  # and it is not what translating at 1 m gives
        assert np.abs(p.read().astype(int) - got.astype(int))[:, valid].mean() > 1


def test_an_older_checkpoint_without_a_resolution_is_accepted(make_raster, tmp_path, caplog,
                                                               tiny_checkpoint):
    src = make_raster("fine.tif", width=64, height=48, transform=ONE_METRE)
    info = _cli("info", tiny_checkpoint)
    assert "ground resolution: not recorded" in info.output
    result = _cli("translate", tiny_checkpoint, src, "-o", tmp_path / "out.tif", *TILE)
    assert result.exit_code == 0, result.output
    assert _ground_warnings(caplog) == []
    refused = _cli("translate", tiny_checkpoint, src, "-o", tmp_path / "at.tif", *TILE,
                   "--at-model-resolution")
    error = cli_error(refused, alone=True)
    assert error.startswith("Error: --at-model-resolution: ")
    assert "does not record the ground resolution" in error
    assert not (tmp_path / "at.tif").exists()
