"""Maps as maps (issue #25): palettes of map domains, nearest-colour mapping, paletted output."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from conftest import cli_error, make_checkpoint, run_cli

from geogan.palette import (
    NODATA_INDEX,
    Palette,
    colormap,
    detect_palette,
    domain_palette,
    nearest_index,
)

MAP_COLOURS = ((240, 230, 200), (30, 120, 40), (40, 90, 200), (200, 60, 50))


def _map_pixels(h: int = 40, w: int = 50, seed: int = 0, stray: int = 0) -> np.ndarray:
    """``(3, h, w)`` uint8: a map of :data:`MAP_COLOURS` blocks with ``stray`` odd pixels."""
    rng = np.random.default_rng(seed)
    classes = (np.arange(h)[:, None] // 10 + np.arange(w)[None] // 13) % len(MAP_COLOURS)
    data = np.asarray(MAP_COLOURS, dtype=np.uint8)[classes].transpose(2, 0, 1).copy()
    for _ in range(stray):
        data[:, rng.integers(h), rng.integers(w)] = rng.integers(0, 256, 3)
    return data


def test_detect_palette_of_a_map_keeps_its_colours_most_frequent_first() -> None:
    data = _map_pixels(stray=5)  # 5 of 2000 pixels: 0.25% off the palette
    palette = detect_palette([(data, None)], "uint8")
    assert palette is not None
    assert set(palette.colours) == set(MAP_COLOURS)
    keys = data.reshape(3, -1).T.tolist()
    counts = [keys.count(list(c)) for c in palette.colours]
    assert counts == sorted(counts, reverse=True)


def test_an_rgb_photo_domain_gets_no_palette() -> None:
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, (3, 40, 50), dtype=np.uint8)
    assert detect_palette([(photo, None)], "uint8") is None
    # a map with too many stray colours (2%) is no palette either
    assert detect_palette([(_map_pixels(stray=40), None)], "uint8") is None
    # nor a map of another dtype or band count
    assert detect_palette([(_map_pixels().astype(np.uint16), None)], "uint16") is None
    assert detect_palette([(_map_pixels()[:2], None)], "uint8") is None


def test_invalid_pixels_are_not_counted() -> None:
    data = _map_pixels()
    data[:, :5] = np.random.default_rng(2).integers(0, 256, (3, 5, 50))
    valid = np.ones(data.shape[1:], bool)
    valid[:5] = False
    assert detect_palette([(data, valid)], "uint8") is not None
    assert detect_palette([(data, None)], "uint8") is None


def test_nearest_index_matches_a_brute_force_search() -> None:
    rng = np.random.default_rng(3)
    palette = Palette(MAP_COLOURS)
    pixels = rng.integers(0, 256, (3, 37, 29)).astype(np.uint8)
    got = nearest_index(pixels, palette)
    for r in range(pixels.shape[1]):
        for c in range(pixels.shape[2]):
            px = pixels[:, r, c].astype(int)
            dists = [sum((int(a) - int(b)) ** 2 for a, b in zip(px, col, strict=True))
                     for col in MAP_COLOURS]
            assert dists[got[r, c]] == min(dists)
    # the palette's own colours map to themselves
    exact = np.asarray(MAP_COLOURS, np.uint8).T[:, None, :]
    assert nearest_index(exact, palette).tolist() == [[0, 1, 2, 3]]


def test_palette_json_round_trips_and_checks() -> None:
    palette = Palette(MAP_COLOURS, ("sand", "forest", "water", "roof"))
    assert Palette.from_json(palette.to_json()) == palette
    with pytest.raises(ValueError):
        Palette(MAP_COLOURS, ("one",))
    with pytest.raises(TypeError):
        Palette.from_json({"names": []})
    table = colormap(palette)
    assert table[1] == (30, 120, 40, 255) and table[NODATA_INDEX][3] == 0


def test_domain_palette_reads_map_files(make_raster) -> None:
    a = make_raster("map1.tif", data=_map_pixels(seed=4))
    b = make_raster("map2.tif", data=_map_pixels(seed=5)[:, ::-1].copy())
    palette = domain_palette([a, b], 3, "uint8")
    assert palette is not None and set(palette.colours) == set(MAP_COLOURS)
    photo = make_raster("photo.tif", width=50, height=40)
    assert domain_palette([photo], 3, "uint8") is None


def test_checkpoint_domain_palette_round_trips(tmp_path: Path) -> None:
    from geogan.contract.checkpoint import CheckpointMeta

    ckpt = _map_checkpoint(tmp_path)
    from geogan.contract.checkpoint import read_checkpoint_meta

    meta = read_checkpoint_meta(ckpt)
    assert Palette.from_json(meta.domains["b"].palette).colours == MAP_COLOURS
    assert meta.domains["a"].palette is None
    assert "palette" not in meta.to_json()["domains"]["a"]
    assert CheckpointMeta.from_json(meta.to_json()) == meta
    from geogan.info import describe_checkpoint

    described = describe_checkpoint(ckpt)["generators"]["a2b"]
    assert described["output"]["palette"]["colours"] == [list(c) for c in MAP_COLOURS]
    assert described["input"]["palette"] is None


def _map_checkpoint(tmp_path: Path) -> Path:
    from geogan.contract.checkpoint import DomainMeta
    from geogan.normalize import BandNorm

    norm = BandNorm.full_range("uint8", 3, 0).to_json()
    domains = {"a": DomainMeta("aerial", norm),
               "b": DomainMeta("map", norm, palette=Palette(MAP_COLOURS).to_json())}
    return make_checkpoint(tmp_path / "map.safetensors", meta={"domains": domains})


def test_translate_writes_a_paletted_geotiff_with_its_colour_table(tmp_path, make_raster):
    import rasterio
    from rasterio.enums import ColorInterp

    ckpt = _map_checkpoint(tmp_path)
    src = make_raster("aerial.tif", width=48, height=40, nodata=0, nodata_box=(0, 8, 0, 8))
    out = tmp_path / "map.tif"
    result = run_cli("translate", ckpt, src, "-o", out, "--tile", "32", "--overlap", "8")
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as ds:
        assert ds.count == 1 and ds.dtypes[0] == "uint8"
        assert ds.colorinterp[0] == ColorInterp.palette
        table = ds.colormap(1)
        assert [table[i] for i in range(4)] == [(*c, 255) for c in MAP_COLOURS]
        values = ds.read(1)
        assert ds.nodata == NODATA_INDEX
    assert (values[:8, :8] == NODATA_INDEX).all()
    assert set(np.unique(values[8:])) <= {0, 1, 2, 3}
    # off: the continuous colours, whose nearest palette colours are the paletted output
    rgb = tmp_path / "rgb.tif"
    result = run_cli("translate", ckpt, src, "-o", rgb, "--tile", "32", "--overlap", "8",
                     "--palette", "off")
    assert result.exit_code == 0, result.output
    with rasterio.open(rgb) as ds:
        assert ds.count == 3
        continuous = ds.read()
    assert (nearest_index(continuous, Palette(MAP_COLOURS))[8:] == values[8:]).all()


def test_palette_on_without_a_recorded_palette_is_one_line(tmp_path, make_raster,
                                                          tiny_checkpoint):
    src = make_raster("aerial.tif", width=40, height=40)
    out = tmp_path / "out.tif"
    result = run_cli("translate", tiny_checkpoint, src, "-o", out, "--palette", "on")
    assert "palette on needs a checkpoint whose target domain is a map" in cli_error(result)
    assert not out.exists()
    # auto with no palette: continuous RGB as before
    result = run_cli("translate", tiny_checkpoint, src, "-o", out, "--tile", "32", "--overlap", "8")
    assert result.exit_code == 0, result.output
    import rasterio

    with rasterio.open(out) as ds:
        assert ds.count == 3


def test_unknown_palette_choice_is_refused() -> None:
    from geogan.errors import InputError
    from geogan.translate.config import TranslateConfig

    with pytest.raises(InputError, match="palette.*maybe.*auto, on, off"):
        dataclasses.replace(TranslateConfig(), palette="maybe")


def _paletted(path: Path, index: np.ndarray, colours=MAP_COLOURS, nodata=None) -> Path:
    import rasterio
    from rasterio.transform import from_origin

    h, w = index.shape
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=1, dtype="uint8",
                       crs="EPSG:32633", transform=from_origin(500000, 4000000, 1, 1),
                       photometric="PALETTE", nodata=nodata) as dst:
        dst.write(index.astype(np.uint8), 1)
        dst.write_colormap(1, {i: (*c, 255) for i, c in enumerate(colours)})
    return path


def test_evaluate_two_paletted_rasters_reports_classes_and_confusion(tmp_path: Path) -> None:
    import json

    ref = np.zeros((20, 30), np.uint8)
    ref[:, 10:20], ref[:, 20:] = 1, 2
    pred = ref.copy()
    pred[:5, :10] = 1            # 50 of class 0 predicted as class 1
    pred[:2, 20:] = 3            # 20 of class 2 predicted as a colour the reference lacks
    pred[19, :] = NODATA_INDEX   # not compared
    ref_path = _paletted(tmp_path / "ref.tif", ref)
    # the prediction's table lists the same colours in another order: classes are colours
    order = [2, 0, 1, 3]
    remap = np.array([order.index(k) for k in range(4)] + [0] * 251 + [NODATA_INDEX], np.uint8)
    pred_path = _paletted(tmp_path / "pred.tif", remap[pred],
                          colours=[MAP_COLOURS[k] for k in order], nodata=NODATA_INDEX)
    result = run_cli("evaluate", pred_path, ref_path, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["valid_pixels"] == 19 * 30
    assert report["confusion"]["counts"] == [[140, 50, 0, 0], [0, 190, 0, 0],
                                             [0, 0, 170, 20]]
    assert [c["accuracy"] for c in report["classes"]] == pytest.approx(
        [140 / 190, 1.0, 170 / 190])
    assert report["accuracy"] == pytest.approx(500 / 570)
    text = run_cli("evaluate", pred_path, ref_path)
    assert text.exit_code == 0 and "confusion (rows: reference" in text.stdout


def test_training_into_a_map_records_its_palette_and_a_photo_none(tmp_path, make_raster):
    from geogan.contract.checkpoint import read_checkpoint_meta
    from geogan.train import TrainConfig, train

    aerial = make_raster("aerial.tif", width=64, height=64)
    rng = np.random.default_rng(6)
    classes = rng.integers(0, 4, (8, 8)).repeat(8, axis=0).repeat(8, axis=1)
    map_rgb = np.asarray(MAP_COLOURS, np.uint8)[classes].transpose(2, 0, 1).copy()
    mapped = make_raster("map.tif", data=map_rgb)
    tiny = {"crop": 32, "ngf": 4, "ndf": 4, "generator": "resnet_6blocks", "max_steps": 1,
            "model": "pix2pix", "device": "cpu", "workers": 0, "preview_every": 100}
    out = train(TrainConfig(a=aerial, b=mapped, output=tmp_path / "run", **tiny))
    meta = read_checkpoint_meta(out)
    assert set(Palette.from_json(meta.domains["b"].palette).colours) == set(MAP_COLOURS)
    assert meta.domains["a"].palette is None  # the aerial photo is no map
