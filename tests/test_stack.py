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
from tests.conftest import run_cli

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


def test_train_records_the_stack_in_band_order_with_source_names(tmp_path: Path,
                                                                  make_raster) -> None:
    a = make_raster("a/sar.tif", width=64, height=64, count=1, seed=1)
    s1 = make_raster("s/opt2019.tif", width=64, height=64, count=3, seed=2)
    s2 = make_raster("s/dem.tif", width=64, height=64, count=2, seed=3)
    b = make_raster("b/opt2020.tif", width=64, height=64, count=3, seed=4)
    out = tmp_path / "run"
    res = run_cli("train", "--model", "pix2pix", "--a", a, "--a-stack", s1, s2, "--b", b,
                  "-o", out, *TINY)
    assert res.exit_code == 0, res.output
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
