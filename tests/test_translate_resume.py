"""``geogan translate --skip-existing --confidence``: an output counts as done only with its
confidence raster; a kept output gets only what it lacks. ``--stac`` Items list the
confidence raster and its style as assets."""

from __future__ import annotations

from pathlib import Path

import pystac
import pytest
import rasterio
from conftest import cli_error, listing, make_checkpoint, run_cli

from geogan.stac import CONFIDENCE_ROLES

TILE = ["--tile", "32", "--overlap", "8"]


@pytest.fixture(scope="module")
def cyclegan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CycleGAN checkpoint: a2b and b2a generators (untrained, weights jittered)."""
    return make_checkpoint(tmp_path_factory.mktemp("cyc") / "cyc.safetensors",
                           directions=("a2b", "b2a"), noise=0.05)


@pytest.fixture(autouse=True)
def fixed_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The provenance's time fixed, so that a raster written again has the same bytes."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")


def _inputs(make_raster) -> Path:
    make_raster("in/b.tif", width=36, height=40, seed=1)
    return make_raster("in/a.tif", width=40, height=36, nodata=0,
                       nodata_box=(0, 5, 0, 7)).parent


def _state(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}


ALL = ["a.confidence.qml", "a.confidence.tif", "a.tif",
       "b.confidence.qml", "b.confidence.tif", "b.tif"]


@pytest.mark.parametrize("style", ["kept", "gone"])
def test_a_kept_output_gets_only_its_missing_confidence_raster(style, make_raster, tmp_path,
                                                               cyclegan):
    inputs, out = _inputs(make_raster), tmp_path / "out"
    result = run_cli("translate", cyclegan, inputs, "-o", out, *TILE, "--confidence")
    assert result.exit_code == 0, result.output
    first = _state(out)
    (out / "a.confidence.tif").unlink()
    if style == "gone":
        (out / "a.confidence.qml").unlink()
    result = run_cli("translate", cyclegan, inputs, "-o", out, *TILE, "--confidence",
                     "--skip-existing")
    assert result.exit_code == 0, result.output
    assert listing(out) == ALL
    now = _state(out)
    # the same confidence raster as the first run wrote; everything else untouched
    assert now["a.confidence.tif"][0] == first["a.confidence.tif"][0]
    assert now["a.confidence.qml"][0] == first["a.confidence.qml"][0]
    for name in ("a.tif", "b.tif", "b.confidence.tif", "b.confidence.qml"):
        assert now[name] == first[name], name
    # complete now: a third run leaves every file alone
    assert run_cli("translate", cyclegan, inputs, "-o", out, *TILE, "--confidence",
                   "--skip-existing").exit_code == 0
    assert _state(out) == now


def _refused(args: list[object], out: Path, expected: str) -> str:
    before = _state(out)
    msg = cli_error(run_cli(*args))
    assert expected in msg, msg
    assert _state(out) == before  # nothing written, nothing replaced
    return msg


def test_an_output_of_another_checkpoint_gets_no_confidence_raster(make_raster, tmp_path,
                                                                   cyclegan):
    inputs, out = _inputs(make_raster), tmp_path / "out"
    other = make_checkpoint(tmp_path / "other.safetensors", directions=("a2b", "b2a"), seed=3)
    assert run_cli("translate", other, inputs, "-o", out, *TILE).exit_code == 0
    msg = _refused(["translate", cyclegan, inputs, "-o", out, *TILE, "--confidence",
                    "--skip-existing"], out, "was made with another checkpoint")
    assert "--overwrite" in msg and "--skip-existing" in msg
    assert listing(out) == ["a.tif", "b.tif"]


def test_an_output_geogan_did_not_make_gets_no_confidence_raster(make_raster, tmp_path,
                                                                 cyclegan):
    inputs = _inputs(make_raster)
    make_raster("out/a.tif", width=40, height=36)
    make_raster("out/b.tif", width=36, height=40)
    msg = _refused(["translate", cyclegan, inputs, "-o", tmp_path / "out", *TILE,
                    "--confidence", "--skip-existing"], tmp_path / "out",
                   "geogan did not make it")
    assert "--confidence" in msg


def test_an_output_on_another_grid_gets_no_confidence_raster(make_raster, tmp_path, cyclegan):
    src = make_raster("in/a.tif", width=60, height=50)
    out = tmp_path / "out" / "a.tif"
    with rasterio.open(src) as ds:
        left, bottom, right, top = ds.bounds
    part = [left, bottom, (left + right) / 2, top]
    assert run_cli("translate", cyclegan, src, "-o", out, *TILE, "--bounds",
                   *part).exit_code == 0
    msg = _refused(["translate", cyclegan, src, "-o", out, *TILE, "--confidence",
                    "--skip-existing"], out.parent, "does not lie on the grid")
    assert "--bounds" in msg


def test_a_broken_confidence_raster_or_a_user_s_style_is_refused(make_raster, tmp_path,
                                                                 cyclegan):
    inputs, out = _inputs(make_raster), tmp_path / "out"
    assert run_cli("translate", cyclegan, inputs, "-o", out, *TILE, "--confidence").exit_code == 0
    args = ["translate", cyclegan, inputs, "-o", out, *TILE, "--confidence", "--skip-existing"]
    (out / "a.confidence.tif").write_bytes(b"II*\0 not a raster")
    _refused(args, out, "a.confidence.tif exists but is not a complete raster")
    (out / "a.confidence.tif").unlink()
    (out / "a.confidence.qml").write_text("<qgis>my own style</qgis>", encoding="utf-8")
    _refused(args, out, "is not a style geogan wrote")


def test_items_list_the_confidence_raster_and_its_style(make_raster, tmp_path, cyclegan):
    inputs, out = _inputs(make_raster), tmp_path / "out"
    result = run_cli("translate", cyclegan, inputs, "-o", out, *TILE, "--confidence", "--stac")
    assert result.exit_code == 0, result.output
    for name in "ab":
        item = pystac.Item.from_file(str(out / f"{name}.stac.json"))
        asset = item.assets["confidence"]
        assert asset.href == f"./{name}.confidence.tif"
        assert Path(asset.get_absolute_href()) == out / f"{name}.confidence.tif"
        assert asset.media_type == pystac.MediaType.GEOTIFF
        assert asset.roles == list(CONFIDENCE_ROLES) == ["metadata", "quality"]
        assert [b["data_type"] for b in asset.extra_fields["raster:bands"]] == ["float32"]
        style = item.assets["confidence_style"]
        assert Path(style.get_absolute_href()) == out / f"{name}.confidence.qml"
        assert style.media_type == "application/xml"
        assert item.assets["data"].roles == ["data"]


def test_a_resumed_batch_lists_the_confidence_raster_it_adds(make_raster, tmp_path, cyclegan):
    inputs, out = _inputs(make_raster), tmp_path / "out"
    assert run_cli("translate", cyclegan, inputs, "-o", out, *TILE, "--stac").exit_code == 0
    assert "confidence" not in pystac.Item.from_file(str(out / "a.stac.json")).assets
    result = run_cli("translate", cyclegan, inputs, "-o", out, *TILE, "--stac", "--confidence",
                     "--skip-existing")
    assert result.exit_code == 0, result.output
    for name in "ab":
        item = pystac.Item.from_file(str(out / f"{name}.stac.json"))
        assert Path(item.assets["confidence"].get_absolute_href()) == \
            out / f"{name}.confidence.tif"
    collection = pystac.Collection.from_file(str(out / "collection.json"))
    assert sorted(i.id for i in collection.get_items()) == ["a", "b"]
