"""Several rasters as one input (``train --a-stack``, ``translate --stack``): the stacked
view on the first raster's grid, its record in the checkpoint, and translate's refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from rasterio.transform import from_origin

from geogan.checkpoint import read_checkpoint_meta
from geogan.contract.checkpoint import CheckpointMeta
from geogan.errors import InputError
from geogan.stack import build_stack, stack_partners
from tests.conftest import cli_error, run_cli

torch.set_num_threads(1)

TINY = ["--crop", "32", "--ngf", "8", "--ndf", "8", "--generator", "resnet_6blocks",
        "--max-steps", "1"]


def test_a_stack_on_another_grid_is_resampled_onto_the_first_grid(tmp_path: Path,
                                                                   make_raster) -> None:
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    first = make_raster("sar.tif", width=60, height=50, count=1, dtype="float32",
                        nodata=-9999.0)
    # 3 m pixels, origin off the first's 5 m grid, partly outside it
    other = make_raster("opt.tif", width=90, height=70, count=3, nodata=0, seed=3,
                        transform=from_origin(485913.0, 5209231.5, 3.0, 3.0))
    folder = tmp_path / "view"
    folder.mkdir()
    view, layers = build_stack(first, [other], "bilinear", folder)
    assert [(x.source, x.bands) for x in layers] == [("sar.tif", 1), ("opt.tif", 3)]
    with rasterio.open(view) as s, rasterio.open(first) as a, rasterio.open(other) as b:
        assert (s.crs, s.transform, s.width, s.height) == (a.crs, a.transform, 60, 50)
        got = s.read()
        with WarpedVRT(b, crs=a.crs, transform=a.transform, width=a.width, height=a.height,
                       resampling=Resampling.bilinear, nodata=0) as w:
            want = w.read()
        assert s.descriptions[1:] == ("opt:red", "opt:green", "opt:blue")
        np.testing.assert_array_equal(got[0], a.read(1))
    inside = want != 0
    assert inside.any() and (~inside).any()  # partly covered: both cases are checked
    np.testing.assert_array_equal(got[1:][inside], want[inside].astype("float32"))
    assert (got[1:][~inside] == -9999.0).all()  # outside the stack raster: the first's nodata


def test_stack_files_pair_with_inputs_by_file_name_stem(tmp_path: Path, make_raster) -> None:
    ins = [make_raster(f"sar/t{i}.tif") for i in range(2)]
    opt = [make_raster(f"opt/t{i}.tif") for i in range(2)]
    one = make_raster("dem.tif")
    assert stack_partners(ins, [tmp_path / "opt", one], "`stack`") == \
        [[opt[0], one], [opt[1], one]]
    assert stack_partners(ins, [str(tmp_path / "opt" / "*.tif")], "`stack`") == \
        [[opt[0]], [opt[1]]]
    make_raster("opt/t1.vrt")  # a second t1.*: which one is meant?
    with pytest.raises(InputError, match=r"stack .*opt has 2 files named like t1.tif"):
        stack_partners(ins, [tmp_path / "opt"], "`stack`")


def _train(tmp_path: Path, make_raster) -> Path:
    """A 1-step pix2pix run on sar.tif + opt2019.tif (3 bands) + dem.tif (2 bands) -> B."""
    a = make_raster("a/sar.tif", width=64, height=64, count=1, seed=1)
    s1 = make_raster("s/opt2019.tif", width=64, height=64, count=3, seed=2)
    s2 = make_raster("s/dem.tif", width=64, height=64, count=2, seed=3)
    b = make_raster("b/opt2020.tif", width=64, height=64, count=3, seed=4)
    out = tmp_path / "run"
    res = run_cli("train", "--model", "pix2pix", "--a", a, "--a-stack", s1, s2, "--b", b,
                  "-o", out, *TINY)
    assert res.exit_code == 0, res.output
    return out


def test_train_records_the_stack_in_band_order_with_source_names(tmp_path: Path,
                                                                  make_raster) -> None:
    out = _train(tmp_path, make_raster)
    meta = read_checkpoint_meta(out / "model.safetensors")
    dom = meta.domains["a"]
    assert dom.stack == [{"source": "sar.tif", "bands": 1}, {"source": "opt2019.tif", "bands": 3},
                         {"source": "dem.tif", "bands": 2}]
    assert dom.band_count == 6 and meta.generators["a2b"].kwargs["in_channels"] == 6
    assert dom.band_names[1:4] == ["opt2019:red", "opt2019:green", "opt2019:blue"]
    assert meta.domains["b"].stack is None
    again = CheckpointMeta.from_json(meta.to_json()).domains["a"]
    assert again.stack == dom.stack and again.band_names == dom.band_names
    assert "stack" not in meta.to_json()["domains"]["b"]  # written only when set


def test_translate_takes_the_stack_and_refuses_another_layout(tmp_path: Path,
                                                              make_raster) -> None:
    import rasterio

    run = _train(tmp_path, make_raster)
    sar, s1, s2 = tmp_path / "a/sar.tif", tmp_path / "s/opt2019.tif", tmp_path / "s/dem.tif"
    out = tmp_path / "out.tif"
    res = run_cli("translate", run, sar, "--stack", s1, s2, "-o", out, "--tile", "32",
                  "--overlap", "0")
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as dst, rasterio.open(sar) as src:
        assert (dst.count, dst.transform, dst.shape) == (3, src.transform, src.shape)
    cases = {
        "order": ((s2, s1), "Error: the stack sar.tif (1 band) + dem.tif (2 bands) + opt2019.tif "
                            "(3 bands) is in another order than training's"),
        "missing": ((s1,), "Error: the stack sar.tif (1 band) + opt2019.tif (3 bands) "
                           "does not have the bands of training's sar.tif (1 band) + "
                           "opt2019.tif (3 bands) + dem.tif (2 bands); pass the same kinds of "
                           "rasters with --stack"),
        "none": ((), "Error: the model was trained on a stack of sar.tif (1 band) + "
                     "opt2019.tif (3 bands) + dem.tif (2 bands); pass the rasters after the "
                     "first with --stack, in that order"),
    }
    for case, (stack, expect) in cases.items():
        bad = tmp_path / f"{case}.tif"
        args = ["--stack", *stack] if stack else []
        line = cli_error(run_cli("translate", run, sar, *args, "-o", bad, "--tile", "32",
                                 "--overlap", "0"))
        assert line.startswith(expect), (case, line)
        assert not bad.exists()


def test_batch_translate_pairs_stack_files_by_name(tmp_path: Path, make_raster) -> None:
    run = _train(tmp_path, make_raster)
    for i in range(2):
        make_raster(f"in/t{i}.tif", width=40, height=40, count=1, seed=10 + i)
        make_raster(f"opt/t{i}.tif", width=40, height=40, count=3, seed=20 + i)
    dem = tmp_path / "s/dem.tif"
    res = run_cli("translate", run, tmp_path / "in", "--stack", tmp_path / "opt", dem,
                  "-o", tmp_path / "outs", "--tile", "32", "--overlap", "0")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "outs").glob("*.tif")) == ["t0.tif", "t1.tif"]
    (tmp_path / "opt/t1.tif").rename(tmp_path / "opt/other.tif")
    line = cli_error(run_cli("translate", run, tmp_path / "in", "--stack", tmp_path / "opt",
                             dem, "-o", tmp_path / "outs2", "--tile", "32", "--overlap", "0"))
    assert line.startswith("Error: --stack ") and "has no file named like t1.tif" in line
    assert not (tmp_path / "outs2").exists()
