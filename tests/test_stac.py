"""``geogan translate --stac``: a STAC Item beside each output, a Collection for a batch, read
back by pystac; written atomically like every output."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from click.testing import CliRunner
from conftest import cli_error
from pystac.extensions.projection import ProjectionExtension
from rasterio.warp import transform as warp_points
from shapely.geometry import Polygon, shape

from geogan import fileio
from geogan.cli import main
from geogan.errors import OutputError

TILE = ["--tile", "32", "--overlap", "8"]


def _cli(*args: object):
    return CliRunner().invoke(main, ["--progress", "none", *map(str, args)])


def _footprint(path: Path) -> Polygon:
    """The raster's outline in WGS84, 50 points along each edge."""
    with rasterio.open(path) as src:
        left, bottom, right, top = src.bounds
        t = np.linspace(0.0, 1.0, 50)
        xs = np.concatenate([left + (right - left) * t, np.full(50, right),
                             right - (right - left) * t, np.full(50, left)])
        ys = np.concatenate([np.full(50, bottom), bottom + (top - bottom) * t,
                             np.full(50, top), top - (top - bottom) * t])
        lons, lats = warp_points(src.crs, "EPSG:4326", xs, ys)
    return Polygon(zip(lons, lats, strict=True))


def _check_item(item: pystac.Item, raster: Path, source: Path, checkpoint: Path) -> None:
    props = item.properties
    with rasterio.open(raster) as src:
        proj = ProjectionExtension.ext(item)
        assert proj.transform[:6] == list(src.transform)[:6]
        assert proj.shape == [src.height, src.width]
        assert proj.epsg == src.crs.to_epsg()
        bands = item.assets["data"].extra_fields["raster:bands"]
        assert [b["data_type"] for b in bands] == list(src.dtypes)
        assert [b.get("nodata") for b in bands] == [src.nodata] * src.count
        assert props["processing:lineage"] == src.tags()["TIFFTAG_IMAGEDESCRIPTION"]
    # a tenth of a metre of slack for the densified outline's rounding
    assert shape(item.geometry).buffer(1e-6).contains(_footprint(raster))
    assert props["geogan:synthetic"] is True
    assert props["geogan:checkpoint_sha256"] == hashlib.sha256(
        checkpoint.read_bytes()).hexdigest()
    assert "geogan" in props["processing:software"]
    assert Path(item.assets["data"].get_absolute_href()) == raster
    linked = sorted(Path(link.get_absolute_href()) for link in item.links
                    if link.rel == "derived_from")
    assert linked == sorted([source.resolve(), checkpoint.resolve()])
    assert all(p.is_file() for p in linked)


def test_an_item_beside_the_output(make_raster, tmp_path, tiny_checkpoint):
    src = make_raster("ortho.tif", width=70, height=50, nodata=0, nodata_box=(0, 6, 0, 9))
    out = tmp_path / "out.tif"
    result = _cli("translate", tiny_checkpoint, src, "-o", out, *TILE, "--stac")
    assert result.exit_code == 0, result.output
    item = pystac.Item.from_file(str(tmp_path / "out.stac.json"))
    assert item.id == "out"
    _check_item(item, out, src, tiny_checkpoint)
    assert not (tmp_path / "collection.json").exists()  # one output: no collection
    # an Item in the way without --overwrite: refused before any work
    before = (tmp_path / "out.stac.json").read_bytes()
    (tmp_path / "new.stac.json").write_text("{}")
    error = cli_error(_cli("translate", tiny_checkpoint, src, "-o", tmp_path / "new.tif",
                           *TILE, "--stac"), alone=True)
    assert "new.stac.json" in error and "--overwrite" in error
    assert not (tmp_path / "new.tif").exists()
    assert (tmp_path / "out.stac.json").read_bytes() == before


def test_a_batch_writes_items_and_a_collection(make_raster, tmp_path, tiny_checkpoint):
    first = make_raster("in/first.tif", width=40, height=36, seed=1)
    second = make_raster("in/second.tif", width=44, height=36, seed=2)
    out = tmp_path / "out"
    result = _cli("translate", tiny_checkpoint, tmp_path / "in", "-o", out, *TILE, "--stac",
                  "--norm", "window")
    assert result.exit_code == 0, result.output
    collection = pystac.Collection.from_file(str(out / "collection.json"))
    items = {i.id: i for i in collection.get_items()}
    assert sorted(items) == ["first", "second"]
    for name, source in (("first", first), ("second", second)):
        _check_item(items[name], out / f"{name}.tif", source, tiny_checkpoint)
    assert "synthetic" in collection.description
    # a resumed batch keeps its items and rewrites its own collection
    again = _cli("translate", tiny_checkpoint, tmp_path / "in", "-o", out, *TILE, "--stac",
                 "--norm", "window", "--skip-existing")
    assert again.exit_code == 0, again.output
    assert len(list(pystac.Collection.from_file(str(out / "collection.json")).get_items())) == 2
    # a collection.json that geogan did not write is not replaced
    other = tmp_path / "other"
    other.mkdir()
    (other / "collection.json").write_text('{"type": "Collection", "id": "mine"}')
    error = cli_error(_cli("translate", tiny_checkpoint, tmp_path / "in", "-o", other,
                           *TILE, "--stac"), alone=True)
    assert "collection.json" in error
    assert sorted(p.name for p in other.iterdir()) == ["collection.json"]


def test_a_failed_item_write_leaves_no_item(make_raster, tmp_path, tiny_checkpoint):
    src = make_raster("ortho.tif", width=40, height=36)

    def hook(point: str, path: Path) -> None:
        if point == "before-rename" and str(path).endswith(".stac.json"):
            raise OutputError(f"{path} could not be written (test)")

    fileio.set_fault_hook(hook)
    try:
        result = _cli("translate", tiny_checkpoint, src, "-o", tmp_path / "out.tif", *TILE,
                      "--stac")
    finally:
        fileio.set_fault_hook(None)
    assert "out.stac.json could not be written" in cli_error(result, alone=True)
    assert not (tmp_path / "out.stac.json").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_items_go_into_the_zip_and_not_to_other_gdal_paths(make_raster, tmp_path,
                                                           tiny_checkpoint):
    src = make_raster("ortho.tif", width=40, height=36)
    zipped = tmp_path / "out.zip"
    result = _cli("translate", tiny_checkpoint, src, "-o", f"/vsizip/{zipped}/a.tif", *TILE,
                  "--stac")
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(zipped) as zf:
        assert sorted(zf.namelist()) == ["a.stac.json", "a.tif"]
        item = pystac.Item.from_dict(json.loads(zf.read("a.stac.json")))
    assert item.assets["data"].href == "./a.tif"
    assert item.properties["geogan:synthetic"] is True
    error = cli_error(_cli("translate", tiny_checkpoint, src, "-o", "/vsimem/x/a.tif",
                           *TILE, "--stac"), alone=True)
    assert "/vsimem/x/a.tif" in error  # the CLI refuses /vsimem/ outputs before anything
    from geogan.errors import GeoganError
    from geogan.translate import TranslateConfig, translate_files

    with pytest.raises(GeoganError) as info:  # the library takes them, but no Item there
        translate_files(tiny_checkpoint, [src], "/vsimem/x/a.tif",
                        TranslateConfig(tile=32, overlap=8, stac=True))
    assert "stac writes each Item" in str(info.value) and "/vsimem/x/a.tif" in str(info.value)


@pytest.mark.parametrize("missing", ["pystac", "rio_stac"])
def test_stac_without_its_libraries_fails_in_one_line(missing, make_raster, tmp_path,
                                                      tiny_checkpoint, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, missing, None)
    src = make_raster("ortho.tif", width=40, height=36)
    error = cli_error(_cli("translate", tiny_checkpoint, src, "-o", tmp_path / "o.tif",
                           *TILE, "--stac"), alone=True)
    assert "geogan[stac]" in error
    assert not (tmp_path / "o.tif").exists()
