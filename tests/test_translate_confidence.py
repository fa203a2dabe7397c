"""``geogan translate --confidence``: the confidence raster and its style beside the output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import cli_error, listing, make_checkpoint, run_cli

from geogan import fileio
from geogan.errors import OutputError
from geogan.provenance import read_provenance
from geogan.qml import CONFIDENCE_TITLE

TILE = ["--tile", "32", "--overlap", "8"]
SAMPLE = Path(__file__).resolve().parents[1] / "geogan" / "sample_data"
PRETRAINED = SAMPLE / "pretrained" / "naip_2009_to_2020.safetensors"
#: How far the confidence of one raster translated in windows of 96 and of 160 pixels (overlap
#: 32) by the shipped model may differ: mean, 99th percentile and largest absolute difference
#: (measured: 0.0035, 0.041, 0.13, near the windows' edges, where the translation itself
#: differs by up to 15 of 255 levels). The windows differ, the statistics and blend do not.
TILE_TOLERANCE = (0.01, 0.05, 0.2)


@pytest.fixture(scope="module")
def cyclegan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CycleGAN checkpoint: a2b and b2a generators (untrained, weights jittered)."""
    return make_checkpoint(tmp_path_factory.mktemp("cyc") / "cyc.safetensors",
                           directions=("a2b", "b2a"), noise=0.05)


def _input(make_raster, kind: str = "nodata", width: int = 70, height: int = 50) -> Path:
    if kind == "mask":
        src = make_raster("r.tif", width=width, height=height)
        with rasterio.open(src, "r+") as ds:
            mask = np.full((height, width), 255, np.uint8)
            mask[10:30, 20:45] = 0
            ds.write_mask(mask)
        return src
    return make_raster("r.tif", width=width, height=height, nodata=0, nodata_box=(5, 25, 10, 30))


def _confidence(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1, masked=True).filled(np.nan)


@pytest.mark.parametrize("kind", ["nodata", "mask", "cog"])
def test_the_confidence_raster_is_on_the_output_s_grid_and_mask(kind, make_raster, tmp_path,
                                                                cyclegan):
    src = _input(make_raster, "mask" if kind == "mask" else "nodata")
    out = tmp_path / "out" / "r.tif"
    extra = ["--cog"] if kind == "cog" else []
    result = run_cli("translate", cyclegan, src, "-o", out, *TILE, "--confidence", *extra)
    assert result.exit_code == 0, result.output
    assert listing(out.parent) == ["r.confidence.qml", "r.confidence.tif", "r.tif"]
    conf = out.parent / "r.confidence.tif"
    with rasterio.open(out) as o, rasterio.open(conf) as s:
        assert (s.crs, s.transform, s.width, s.height) == (o.crs, o.transform, o.width,
                                                           o.height)
        assert s.count == 1 and s.dtypes[0] == "float32"
        assert s.descriptions == ("geogan confidence (1 = sure, 0 = guessing)",)
        mask = o.dataset_mask()
        assert 0 < np.count_nonzero(mask == 0) < mask.size
        assert np.array_equal(s.dataset_mask(), mask)
        values = s.read(1)
        if kind != "mask":
            assert np.isnan(s.nodata) and np.array_equal(np.isnan(values), mask == 0)
        inside = values[mask > 0]
        assert np.all((inside >= 0) & (inside <= 1)) and inside.std() > 0
        assert read_provenance(s) is not None
        assert read_provenance(s) == read_provenance(o)
        tags = s.tags()
        assert tags["GEOGAN_SYNTHETIC"] == "yes" and tags["GEOGAN_PRODUCT"] == "confidence"
        assert tags["GEOGAN_CONFIDENCE_MEASURE"] == "cycle"
        assert "b2a(a2b(x))" in tags["GEOGAN_CONFIDENCE_FORMULA"]
        assert tags["GEOGAN_CHECKPOINT_SHA256"] == o.tags()["GEOGAN_CHECKPOINT_SHA256"]
        assert "GEOGAN_PRODUCT" not in o.tags()
        if kind == "cog":
            assert s.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    style = (out.parent / "r.confidence.qml").read_text(encoding="utf-8")
    assert "singlebandpseudocolor" in style and CONFIDENCE_TITLE in style


def _naip_crop(tmp_path: Path, size: int = 160) -> Path:
    """The north-west ``size`` px of the bundled NAIP 2009 scene (its grid, CRS and nodata)."""
    from rasterio.windows import Window

    with rasterio.open(SAMPLE / "naip_2009.tif") as src:
        window = Window(200, 200, size, size)
        profile = dict(src.profile, width=size, height=size, photometric="MINISBLACK",
                       transform=src.window_transform(window))
        data = src.read(window=window)
    data[:, :20, :30] = 0  # a nodata corner
    path = tmp_path / "crop.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def test_the_confidence_does_not_depend_on_the_tile(tmp_path):
    """The shipped CycleGAN on a crop of its scene, in windows of 96 and of 160 px."""
    src = _naip_crop(tmp_path)
    maps = []
    for tile in (96, 160):
        out = tmp_path / f"t{tile}" / "r.tif"
        result = run_cli("translate", PRETRAINED, src, "-o", out, "--tile", tile, "--overlap",
                         "32", "--confidence", "-j", "1")
        assert result.exit_code == 0, result.output
        maps.append(_confidence(out.parent / "r.confidence.tif"))
    assert np.array_equal(np.isnan(maps[0]), np.isnan(maps[1]))
    assert np.isnan(maps[0]).sum() == 20 * 30
    valid = ~np.isnan(maps[0])
    diff = np.abs(maps[0] - maps[1])[valid]
    measured = (diff.mean(), np.percentile(diff, 99), diff.max())
    assert all(m < t for m, t in zip(measured, TILE_TOLERANCE, strict=True)), measured
    assert np.nanstd(maps[0]) > 20 * diff.mean()  # the map varies far more than the tiles


def test_the_output_is_the_same_with_or_without_confidence(make_raster, tmp_path, cyclegan,
                                                           monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    src = _input(make_raster)
    plain, with_conf = tmp_path / "plain" / "r.tif", tmp_path / "conf" / "r.tif"
    assert run_cli("translate", cyclegan, src, "-o", plain, *TILE).exit_code == 0
    assert listing(plain.parent) == ["r.tif"]
    assert run_cli("translate", cyclegan, src, "-o", with_conf, *TILE,
                   "--confidence").exit_code == 0
    assert plain.read_bytes() == with_conf.read_bytes()


def test_a_checkpoint_without_b2a_falls_back_to_the_feature_measure(make_raster, tmp_path,
                                                                    tiny_checkpoint):
    src = _input(make_raster)
    out = tmp_path / "out" / "r.tif"
    result = run_cli("translate", tiny_checkpoint, src, "-o", out, *TILE, "--confidence")
    assert result.exit_code == 0, result.output
    with rasterio.open(out.parent / "r.confidence.tif") as s:
        assert s.tags()["GEOGAN_CONFIDENCE_MEASURE"] == "feature"
        values = s.read(1)
    inside = values[~np.isnan(values)]
    assert inside.size and np.all((inside >= 0) & (inside <= 1))


def test_norm_window_without_b2a_uses_test_time_augmentation(make_raster, tmp_path,
                                                             tiny_checkpoint):
    src = _input(make_raster)
    out = tmp_path / "out" / "r.tif"
    result = run_cli("translate", tiny_checkpoint, src, "-o", out, *TILE, "--confidence",
                     "--norm", "window")
    assert result.exit_code == 0, result.output
    with rasterio.open(out.parent / "r.confidence.tif") as s:
        assert s.tags()["GEOGAN_CONFIDENCE_MEASURE"] == "tta"


def test_a_batch_writes_a_confidence_raster_beside_each_output(make_raster, tmp_path, cyclegan):
    a = make_raster("in/a.tif", width=40, height=36)
    make_raster("in/b.tif", width=36, height=40, seed=1)
    out = tmp_path / "out"
    result = run_cli("translate", cyclegan, a.parent, "-o", out, *TILE, "--confidence")
    assert result.exit_code == 0, result.output
    assert listing(out) == ["a.confidence.qml", "a.confidence.tif", "a.tif",
                            "b.confidence.qml", "b.confidence.tif", "b.tif"]
    for name in "ab":
        with rasterio.open(out / f"{name}.tif") as o, \
                rasterio.open(out / f"{name}.confidence.tif") as s:
            assert (s.transform, s.shape) == (o.transform, o.shape)


def test_norm_dense_is_refused(make_raster, tmp_path, cyclegan):
    src = _input(make_raster)
    msg = cli_error(run_cli("translate", cyclegan, src, "-o", tmp_path / "out" / "r.tif",
                            *TILE, "--confidence", "--norm", "dense"))
    assert msg.startswith("Error: --confidence ") and "--norm" in msg
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra", [["--at-model-resolution"], ["vsizip"]])
def test_what_the_side_rasters_cannot_do_is_refused(extra, make_raster, tmp_path, cyclegan):
    src = _input(make_raster)
    out: object = tmp_path / "out" / "r.tif"
    if extra == ["vsizip"]:
        out, extra = f"/vsizip/{tmp_path / 'out.zip'}/r.tif", []
    msg = cli_error(run_cli("translate", cyclegan, src, "-o", out, *TILE, "--confidence",
                            *extra))
    assert "confidence raster" in msg
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.zip").exists()


def test_existing_files_are_refused_and_overwrite_replaces_all(make_raster, tmp_path, cyclegan):
    src = _input(make_raster)
    out = tmp_path / "out" / "r.tif"
    assert run_cli("translate", cyclegan, src, "-o", out, *TILE, "--confidence").exit_code == 0
    before = {p.name: p.stat().st_mtime_ns for p in out.parent.iterdir()}
    msg = cli_error(run_cli("translate", cyclegan, src, "-o", out, *TILE, "--confidence"))
    assert "r.tif already exists" in msg and "--overwrite" in msg
    assert {p.name: p.stat().st_mtime_ns for p in out.parent.iterdir()} == before
    (out.parent / "r.confidence.tif").unlink()
    result = run_cli("translate", cyclegan, src, "-o", out, *TILE, "--confidence",
                     "--overwrite", "--overlap", "4")
    assert result.exit_code == 0, result.output
    assert listing(out.parent) == ["r.confidence.qml", "r.confidence.tif", "r.tif"]
    with rasterio.open(out.parent / "r.confidence.tif") as s:
        assert s.tags()["GEOGAN_OVERLAP"] == "4"


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_user_s_style_file_is_never_replaced(overwrite, make_raster, tmp_path, cyclegan):
    src = _input(make_raster)
    style = tmp_path / "out" / "r.confidence.qml"
    style.parent.mkdir()
    style.write_text("<qgis>my own style</qgis>", encoding="utf-8")
    extra = ["--overwrite"] if overwrite else []
    msg = cli_error(run_cli("translate", cyclegan, src, "-o", style.parent / "r.tif", *TILE,
                            "--confidence", *extra))
    assert "r.confidence.qml" in msg
    assert listing(style.parent) == ["r.confidence.qml"]
    assert style.read_text(encoding="utf-8") == "<qgis>my own style</qgis>"


@pytest.mark.parametrize(("point", "name"), [("before-rename", "r.confidence.qml"),
                                             ("between-renames", "r.confidence.qml"),
                                             ("between-renames", "r.tif")])
def test_a_failure_at_the_renames_keeps_all_older_files(point, name, make_raster, tmp_path,
                                                        cyclegan):
    src = _input(make_raster)
    out = tmp_path / "out" / "r.tif"
    assert run_cli("translate", cyclegan, src, "-o", out, *TILE, "--confidence").exit_code == 0
    before = {p.name: p.read_bytes() for p in out.parent.iterdir()}
    assert len(before) == 3

    def hook(where: str, path: Path) -> None:
        if where == point and path.name == name:
            raise OutputError(f"{path}: simulated failure at {where}")

    fileio.set_fault_hook(hook)
    try:
        msg = cli_error(run_cli("translate", cyclegan, src, "-o", out, *TILE, "--confidence",
                                "--overwrite", "--overlap", "4"))
    finally:
        fileio.set_fault_hook(None)
    assert "simulated failure" in msg
    assert {p.name: p.read_bytes() for p in out.parent.iterdir()} == before


def test_a_failure_while_writing_leaves_no_file(make_raster, tmp_path, cyclegan, monkeypatch):
    from geogan.translate.confidence import ConfidenceRaster

    calls = []

    def failing(self, rows):
        calls.append(rows.row)
        if len(calls) >= 2:
            raise OutputError("the confidence raster failed on purpose")
        return rows.layers["confidence"][None]

    monkeypatch.setattr(ConfidenceRaster, "values", failing)
    src = _input(make_raster)
    msg = cli_error(run_cli("translate", cyclegan, src, "-o", tmp_path / "out" / "r.tif", *TILE,
                            "--confidence"))
    assert msg == "Error: the confidence raster failed on purpose"
    assert len(calls) == 2 and listing(tmp_path / "out") == []


def test_the_engine_computes_what_the_measure_module_computes(tmp_path):
    """The confidence blended in the engine equals geogan.confidence.raster_confidence (the
    reference: the measure over the same windows, weights and statistics, in memory)."""
    from geogan.checkpoint import load_generator
    from geogan.confidence import raster_confidence, raster_models
    from geogan.normstats import load_stats, stats_path_for

    src = _naip_crop(tmp_path, size=128)
    out = tmp_path / "out" / "r.tif"
    result = run_cli("translate", PRETRAINED, src, "-o", out, "--tile", "64", "--overlap", "16",
                     "--confidence", "--save-stats", "--precision", "fp32", "-j", "1")
    assert result.exit_code == 0, result.output
    engine = _confidence(out.parent / "r.confidence.tif")
    stats = load_stats(stats_path_for(out))
    a2b, b2a = load_generator(PRETRAINED, "a2b"), load_generator(PRETRAINED, "b2a")
    with rasterio.open(src) as ds:
        raster, valid = ds.read(), ds.dataset_mask() > 0
    models = raster_models(a2b, b2a, raster, stats, valid=valid)
    want = raster_confidence(models, raster, 64, 16, valid=valid)
    assert np.array_equal(np.isnan(engine), np.isnan(want))
    np.testing.assert_allclose(engine[valid], want[valid], atol=1e-4)


def test_vertical_strips_give_the_same_confidence(make_raster, tmp_path, cyclegan, monkeypatch):
    """A wide raster translated in column strips (geogan.translate.strips) has the same
    confidence, pixel for pixel, as one translated in one piece."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    src = _input(make_raster, width=150, height=40)
    blocks = ["--co", "BLOCKXSIZE=16", "--co", "BLOCKYSIZE=16"]
    whole, strips = tmp_path / "whole" / "r.tif", tmp_path / "strips" / "r.tif"
    assert run_cli("translate", cyclegan, src, "-o", whole, *TILE, *blocks,
                   "--confidence").exit_code == 0
    monkeypatch.setenv("GEOGAN_STRIP_WIDTH", "48")
    result = run_cli("translate", cyclegan, src, "-o", strips, *TILE, *blocks, "--confidence")
    assert result.exit_code == 0, result.output
    for name in ("r.tif", "r.confidence.tif"):
        with rasterio.open(whole.parent / name) as a, rasterio.open(strips.parent / name) as b:
            assert np.array_equal(a.read(), b.read(), equal_nan=True), name
            assert np.array_equal(a.read_masks(), b.read_masks()), name
