"""``geogan mosaic --index FOLDER``: the footprints of a batch's outputs and a VRT over them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
from click.testing import CliRunner
from conftest import cli_error
from rasterio.transform import from_origin
from rasterio.windows import from_bounds

from geogan.cli import main
from geogan.vrt import VrtSource, vrt_xml

ORIGIN = (485900.0, 5209247.0)
#: (column, row) of each 24 x 20 px raster on a 3 x 2 layout, one place left empty.
PLACES = [(0, 0), (1, 0), (2, 0), (0, 1), (2, 1)]


def _cli(*args: object):
    return CliRunner().invoke(main, ["--progress", "none", "mosaic", *map(str, args)])


def _one_error(result) -> str:
    """The ``Error:`` line, alone on stderr, of a failed command."""
    return cli_error(result, alone=True)


def _batch(make_raster, folder: str = "out", res: float = 5.0, **kwargs) -> Path:
    for k, (col, row) in enumerate(PLACES):
        path = make_raster(f"{folder}/q{k}.tif", 24, 20, seed=k, transform=from_origin(
            ORIGIN[0] + col * 24 * res, ORIGIN[1] - row * 20 * res, res, res), **kwargs)
        if k % 2 == 0:
            with rasterio.open(path, "r+") as ds:
                ds.update_tags(GEOGAN_MODEL=f"model-{k}", GEOGAN_STEP=str(100 * k), OTHER="x")
    return path.parent


def _assert_vrt_holds_each_raster(vrt: Path, rasters: list[Path]) -> None:
    with rasterio.open(vrt) as mosaic:
        whole = mosaic.read()
        valid = mosaic.dataset_mask()
        for path in rasters:
            with rasterio.open(path) as src:
                win = from_bounds(*src.bounds, transform=mosaic.transform).round_offsets()
                r, c = int(win.row_off), int(win.col_off)
                np.testing.assert_array_equal(whole[:, r:r + src.height, c:c + src.width],
                                              src.read())
                np.testing.assert_array_equal(valid[r:r + src.height, c:c + src.width],
                                              src.dataset_mask())
                valid[r:r + src.height, c:c + src.width] = 0
        assert not valid.any()  # the empty place is nodata, not some raster's pixels


def test_index_writes_footprints_with_provenance_and_a_vrt_of_the_union(make_raster):
    folder = _batch(make_raster, nodata=0, nodata_box=(0, 4, 0, 6))
    (folder / "q0.tif.stats.json").write_text("{}")
    result = _cli("--index", folder)
    assert result.exit_code == 0, result.output
    assert "Indexed 5 raster(s)" in result.stdout
    rasters = sorted(folder.glob("q*.tif"))
    with rasterio.open(folder / "mosaic.vrt") as mosaic:
        assert mosaic.bounds == (ORIGIN[0], ORIGIN[1] - 2 * 20 * 5.0, ORIGIN[0] + 3 * 24 * 5.0,
                                 ORIGIN[1])
        assert (mosaic.width, mosaic.height, mosaic.count) == (72, 40, 3)
        assert mosaic.crs == "EPSG:26914" and mosaic.nodata == 0 and mosaic.dtypes[0] == "uint8"
    _assert_vrt_holds_each_raster(folder / "mosaic.vrt", rasters)
    assert "relativeToVRT=\"1\">q0.tif<" in (folder / "mosaic.vrt").read_text()

    index = pyogrio.read_dataframe(folder / "index.gpkg", layer="outputs")
    assert list(index["path"]) == [p.name for p in rasters]
    def field(name: str) -> list[str | None]:  # nulls read back as NaN
        return [v if isinstance(v, str) else None for v in index[name]]

    assert field("GEOGAN_MODEL") == ["model-0", None, "model-2", None, "model-4"]
    assert field("GEOGAN_STEP") == ["0", None, "200", None, "400"]
    assert "OTHER" not in index.columns
    for geom, path in zip(index.geometry, rasters, strict=True):
        with rasterio.open(path) as src:
            assert geom.bounds == tuple(src.bounds)
    assert index.crs.to_epsg() == 26914

    # an index is geogan's to replace only with --overwrite
    stamp = (folder / "mosaic.vrt").stat().st_ino
    msg = _one_error(_cli("--index", folder))
    assert "index.gpkg already exists" in msg and "--overwrite" in msg
    assert _cli("--index", folder, "--overwrite").exit_code == 0
    assert (folder / "mosaic.vrt").stat().st_ino != stamp
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_the_vrt_carries_the_rasters_masks(make_raster, tmp_path):
    folder = tmp_path / "masked"
    for k, (col, row) in enumerate(PLACES[:2]):
        path = make_raster(f"masked/m{k}.tif", 24, 20, seed=k, transform=from_origin(
            ORIGIN[0] + col * 120.0, ORIGIN[1] - row * 100.0, 5.0, 5.0))
        with rasterio.open(path, "r+") as ds:
            mask = np.full((20, 24), 255, np.uint8)
            mask[5:9, 3 + k:12] = 0
            ds.write_mask(mask)
    assert _cli("--index", folder).exit_code == 0
    assert "<MaskBand>" in (folder / "mosaic.vrt").read_text()
    _assert_vrt_holds_each_raster(folder / "mosaic.vrt", sorted(folder.glob("m*.tif")))


@pytest.mark.parametrize(("change", "words"), [
    ({"crs": "EPSG:32614"}, "differ in CRS"),
    ({"res": 2.5}, "differ in pixel size"),
    ({"count": 4}, "differ in band count"),
    ({"dtype": "uint16"}, "differ in data type"),
    ({"nodata": 7}, "differ in nodata"),
])
def test_rasters_that_do_not_make_one_mosaic_are_refused_in_one_line(make_raster, tmp_path,
                                                                     change, words):
    folder = _batch(make_raster, nodata=0)
    res = change.pop("res", 5.0)
    make_raster("out/z_odd.tif", 24, 20, transform=from_origin(ORIGIN[0], ORIGIN[1], res, res),
                **{"nodata": 0, **change})
    before = sorted(p.name for p in folder.iterdir())
    msg = _one_error(_cli("--index", folder))
    assert words in msg and "z_odd.tif" in msg and "q0.tif" in msg
    assert "one grid (geogan tile --align-to, or gdalwarp)" in msg  # the other command's flag
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written


def test_index_needs_one_folder_of_rasters(make_raster, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "holds no .tif rasters" in _one_error(_cli("--index", empty))
    folder = _batch(make_raster)
    assert "drop -o" in _one_error(_cli("--index", folder, "-o", tmp_path / "x.tif"))
    assert "takes one FOLDER" in _one_error(_cli("--index", folder, empty))
    assert "give the mosaic's file with -o" in _one_error(_cli(folder))


def test_off_grid_rasters_are_placed_at_fractional_offsets(tmp_path):
    def source(name: str, x: float) -> VrtSource:
        return VrtSource(path=tmp_path / name, width=10, height=10,
                         transform=(2.0, 0.0, x, 0.0, -2.0, 100.0), crs_wkt="", count=1,
                         dtype="float32", nodata=None, block=(10, 1))

    xml = vrt_xml([source("a.tif", 0.0), source("b.tif", 21.0)], tmp_path / "m.vrt")
    assert 'rasterXSize="21"' in xml and 'xOff="10.5"' in xml and "<SRS" not in xml
    assert "<SimpleSource>" in xml and "ComplexSource" not in xml
