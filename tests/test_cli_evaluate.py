"""``geogan evaluate`` on the command line: the report, and one-line errors for bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import cli_error, make_raster_array

from geogan.cli import main


def _run(*args: str):
    return CliRunner().invoke(main, ["--progress", "none", "evaluate", *map(str, args)])


def _one_line_error(result) -> str:
    line = cli_error(result, alone=True)
    assert result.stdout == ""
    return line


def test_json_report(make_raster):
    data = make_raster_array(30, 20, 3, "uint8", 0)
    a = make_raster("a.tif", data=data)
    b = make_raster("b.tif", data=data)
    result = _run(a, b, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["valid_pixels"] == 600 and report["bands"] == [1, 2, 3]
    assert report["scores"]["prediction"]["rmse"] == 0.0
    assert report["scores"]["prediction"]["ssim"] == pytest.approx(1.0)


def test_table_with_baseline_and_bands(make_raster):
    a = make_raster("a.tif", data=make_raster_array(30, 20, 4, "uint8", 0))
    b = make_raster("b.tif", data=make_raster_array(30, 20, 4, "uint8", 1))
    result = _run(a, b, "--bands", "1,3", "--baseline", "histogram-match", "--source", a)
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines()
            if line.startswith(("prediction ", "histogram-match "))]
    assert [r[:2] for r in rows] == [["prediction", "all"], ["prediction", "1"],
                                     ["prediction", "3"], ["histogram-match", "all"],
                                     ["histogram-match", "1"], ["histogram-match", "3"]]


def test_missing_prediction(make_raster, tmp_path):
    b = make_raster("b.tif")
    line = _one_line_error(_run(tmp_path / "nope.tif", b))
    assert "nope.tif does not exist" in line


def test_missing_reference(make_raster, tmp_path):
    a = make_raster("a.tif")
    assert "ref.tif does not exist" in _one_line_error(_run(a, tmp_path / "ref.tif"))


def test_not_a_raster(make_raster, tmp_path):
    a = make_raster("a.tif")
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"not a tiff")
    assert "not a readable raster" in _one_line_error(_run(a, junk))


def test_no_overlap(make_raster):
    from rasterio.transform import from_origin

    a = make_raster("a.tif")
    b = make_raster("b.tif", transform=from_origin(100.0, 200.0, 5, 5))
    assert "does not overlap" in _one_line_error(_run(a, b))


def test_band_mismatch(make_raster):
    a = make_raster("a.tif", count=3)
    b = make_raster("b.tif", count=4)
    assert "pass --bands" in _one_line_error(_run(a, b))
    assert "has 3" in _one_line_error(_run(a, b, "--bands", "2,4"))
    assert "write them like 1,2,3" in _one_line_error(_run(a, b, "--bands", "1,x"))


def test_baseline_without_source(make_raster):
    a = make_raster("a.tif")
    assert "needs --source" in _one_line_error(_run(a, a, "--baseline", "histogram-match"))


def test_missing_source_and_aoi(make_raster, tmp_path):
    a = make_raster("a.tif")
    line = _one_line_error(_run(a, a, "--baseline", "histogram-match", "--source",
                                tmp_path / "src.tif"))
    assert "src.tif does not exist" in line
    assert "aoi.gpkg does not exist" in _one_line_error(_run(a, a, "--aoi",
                                                             tmp_path / "aoi.gpkg"))


def test_nothing_valid(make_raster):
    a = make_raster("a.tif")
    b = make_raster("b.tif", data=np.zeros((3, 45, 67), np.uint8), nodata=0)
    assert "no pixel is valid" in _one_line_error(_run(a, b))
