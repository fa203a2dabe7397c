"""The QGIS provider on paths the other QGIS tests leave out: pix2pixHD training, training
and translating with stacked rasters (an alpha band, a stack raster with a hole), and a
paletted (map) translation. ``qgis_process`` headless, as in test_qgis_plugin; skipped,
with the reason, when QGIS is not installed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import make_checkpoint, make_raster_array
from rasterio.enums import ColorInterp, MaskFlags
from test_qgis_backend import QGIS_CHECKPOINT
from test_qgis_plugin import env, explain, qgis_process, run_alg  # noqa: F401 (fixtures)
from test_stack_masks import GRID, _holed, _primary, _stack_valid_on, _valid

from geogan.contract.checkpoint import DomainMeta
from geogan.normalize import BandNorm
from geogan.palette import NODATA_INDEX, Palette

TINY = {"MAX_STEPS": 1, "NGF": 8, "DEVICE": "cpu", "EPOCHS": 1}
MAP_COLOURS = ((240, 230, 200), (30, 120, 40), (40, 90, 200), (200, 60, 50))


def test_train_pix2pixhd_writes_its_checkpoint(qgis_process, env, make_raster,  # noqa: F811
                                               tmp_path):
    a = make_raster("a.tif", width=96, height=96, count=3, seed=1)
    b = make_raster("b.tif", width=96, height=96, count=3, seed=2)
    run_dir = tmp_path / "run"
    proc, results = run_alg(qgis_process, env, "geogan:train", A_RASTERS=a, B_RASTERS=b,
                            MODEL="pix2pixhd", CROP=96, OUTPUT=run_dir, **TINY)
    assert proc.returncode == 0, explain(proc)
    meta = json.loads(Path(results["CHECKPOINT"]).with_suffix(".json").read_text())
    assert meta["model"] == "pix2pixhd"
    assert meta["generators"]["a2b"]["arch"] == "pix2pixhd"


def test_train_with_a_stack_and_translate_with_it(qgis_process, env, tmp_path):  # noqa: F811
    """An RGBA raster (its alpha is no data band, also to the dialog's band check) stacked with
    a raster on another grid with a nodata hole: the output keeps the alpha as its mask and
    masks the hole and the stack raster's outside."""
    first = _primary(tmp_path / "sar.tif", "alpha")
    other = _holed(tmp_path / "opt.tif")
    b = tmp_path / "opt2020.tif"
    with rasterio.open(b, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8",
                       crs="EPSG:26914", transform=GRID) as dst:
        dst.write(make_raster_array(64, 64, 3, seed=4))  # a photo: no palette
    run_dir = tmp_path / "run"
    proc, results = run_alg(qgis_process, env, "geogan:train", A_RASTERS=first,
                            A_STACK=other, B_RASTERS=b, MODEL="pix2pix", CROP=32,
                            GENERATOR="resnet_6blocks", MAX_NODATA=1, OUTPUT=run_dir, **TINY)
    assert proc.returncode == 0, explain(proc)
    meta = json.loads(Path(results["CHECKPOINT"]).with_suffix(".json").read_text())
    assert meta["domains"]["a"]["stack"] == [{"source": "sar.tif", "bands": 3},
                                             {"source": "opt.tif", "bands": 1}]
    out = tmp_path / "out.tif"
    proc, _ = run_alg(qgis_process, env, "geogan:translate", INPUT=first, CHECKPOINT=run_dir,
                      STACK=other, TILE=32, OVERLAP=0, DEVICE="cpu", OUTPUT=out)
    assert proc.returncode == 0, explain(proc)
    want = _valid(first) & _stack_valid_on(first, other)
    assert want.any() and (_valid(first) & ~want).any()  # the hole lies on valid ground
    with rasterio.open(out) as dst, rasterio.open(first) as src:
        assert (dst.count, dst.transform, dst.shape, dst.nodata) == \
            (3, src.transform, src.shape, None)
        assert dst.mask_flag_enums == ([MaskFlags.per_dataset],) * 3
        np.testing.assert_array_equal(dst.dataset_mask() != 0, want)
    # the stack left out: one line that says what to pass, in the dialog's words
    proc, _ = run_alg(qgis_process, env, "geogan:translate", INPUT=first, CHECKPOINT=run_dir,
                      TILE=32, OVERLAP=0, DEVICE="cpu", OUTPUT=tmp_path / "bad.tif")
    assert proc.returncode != 0
    assert "'Rasters stacked with the input (in training's order)'" in proc.stderr, \
        explain(proc)
    assert not (tmp_path / "bad.tif").exists()


def test_translate_into_a_map_writes_a_paletted_raster(qgis_process, env,  # noqa: F811
                                                       make_raster, tmp_path):
    norm = BandNorm.full_range("uint8", 3, 0).to_json()
    domains = {"a": DomainMeta("aerial", norm),
               "b": DomainMeta("map", norm, palette=Palette(MAP_COLOURS).to_json())}
    ckpt = make_checkpoint(tmp_path / "map.safetensors", meta={"domains": domains},
                           **{**QGIS_CHECKPOINT, "directions": ("a2b",)})
    src = make_raster("aerial.tif", width=48, height=40, nodata=0, nodata_box=(0, 8, 0, 8))
    out = tmp_path / "map.tif"
    proc, _ = run_alg(qgis_process, env, "geogan:translate", INPUT=src, CHECKPOINT=ckpt,
                      PALETTE="on", TILE=32, OVERLAP=8, DEVICE="cpu", OUTPUT=out)
    assert proc.returncode == 0, explain(proc)
    assert "3 out, a map of 4 colours written as one band of colour indices" in proc.stdout
    with rasterio.open(out) as ds:
        assert (ds.count, ds.dtypes[0], ds.nodata) == (1, "uint8", NODATA_INDEX)
        assert ds.colorinterp[0] == ColorInterp.palette
        table = ds.colormap(1)
        assert [table[i] for i in range(4)] == [(*c, 255) for c in MAP_COLOURS]
        values = ds.read(1)
    assert (values[:8, :8] == NODATA_INDEX).all()
    assert set(np.unique(values[8:])) <= {0, 1, 2, 3}


def test_the_dialog_checks_the_stack_against_the_checkpoint_first(tmp_path):
    """Before geogan runs: a stack left out, or given to a model trained without one, is
    one message in the dialog's words; the stack's bands count towards the input's."""
    from geogan_qgis.backend import BackendError
    from geogan_qgis.jobs import check_translate_input

    norm4, norm3 = (BandNorm.full_range("uint8", n, 0).to_json() for n in (4, 3))
    layers = [{"source": "sar.tif", "bands": 3}, {"source": "opt.tif", "bands": 1}]
    stacked = make_checkpoint(tmp_path / "stacked.safetensors", bands_a=4,
                              meta={"domains": {"a": DomainMeta("a", norm4, stack=layers),
                                                "b": DomainMeta("b", norm3)}})
    plain = make_checkpoint(tmp_path / "plain.safetensors", bands_a=4)
    assert check_translate_input(stacked, "a2b", "/x/sar.tif", 3, [("opt.tif", 1)]).path \
        == stacked
    cases = [(stacked, [], "the model was trained on a stack of sar.tif (3 bands) + opt"),
             (stacked, [("opt.tif", 2)], "does not have the bands of training's"),
             (plain, [("opt.tif", 1)], "the model was trained on single rasters")]
    for ckpt, stack, start in cases:
        with pytest.raises(BackendError) as caught:
            check_translate_input(ckpt, "a2b", "/x/sar.tif", 3, stack)
        message = str(caught.value)
        assert start in message and "--stack" not in message, message
        assert "'Rasters stacked with the input (in training's order)'" in message, message
    assert check_translate_input(plain, "a2b", "/x/rgb.tif", 4).path == plain
