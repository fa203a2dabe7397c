"""Very wide rasters translated in vertical strips (#26): same bytes as in one piece."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from conftest import cli_error, make_checkpoint, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from geogan.blend import AxisLayout
from geogan.checkpoint import LoadedGenerator
from geogan.normalize import BandNorm
from geogan.translate import TranslateConfig, translate_raster
from geogan.translate.strips import (
    STRIP_ENV,
    column_bytes,
    plan_strips,
    strip_width,
    windows_touching,
)

torch.set_num_threads(1)


def random_net(bands_in: int, bands_out: int, seed: int = 0) -> nn.Module:
    """A fixed random conv net (no instance norm): each pixel depends on its neighbours."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(bands_in, 6, 3, padding=1, padding_mode="reflect"), nn.ReLU(),
        nn.Conv2d(6, bands_out, 5, padding=2, padding_mode="reflect"), nn.Tanh(),
    ).eval()


class Counting(nn.Module):
    """Wraps a net and counts the windows it runs."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.windows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.windows += x.shape[0]
        return self.net(x)


def generator(bands: int = 3, dtype: str = "uint8", nodata: float | None = None,
              seed: int = 0) -> LoadedGenerator:
    norm = BandNorm.full_range(dtype, bands, nodata)
    return LoadedGenerator(Counting(random_net(bands, bands, seed)), "a2b", norm, norm, None)


#: Tags that say when a file was written.
TIMES = ("TIFFTAG_DATETIME", "GEOGAN_CREATED")


def contents(path: Path) -> tuple[bytes, bytes, dict, dict]:
    """Pixel bytes, dataset mask bytes, profile and tags (but the times) of a raster."""
    with rasterio.open(path) as src:
        tags = {k: v for k, v in src.tags().items() if k not in TIMES}
        return src.read().tobytes(), src.dataset_mask().tobytes(), dict(src.profile), tags


def translate_both(gen: LoadedGenerator, src: Path, tmp_path: Path, config: TranslateConfig,
                   strip_px: int, monkeypatch: pytest.MonkeyPatch,
                   caplog: pytest.LogCaptureFixture) -> tuple[Path, Path, int, int]:
    """Translate ``src`` in one piece and in strips of ``strip_px``: both outputs, the
    strips logged and the extra windows run."""
    monkeypatch.delenv(STRIP_ENV, raising=False)
    whole = translate_raster(gen, src, tmp_path / "whole.tif", config)
    n_whole = gen.module.windows
    monkeypatch.setenv(STRIP_ENV, str(strip_px))
    with caplog.at_level(logging.INFO, logger="geogan.translate.strips"):
        strips = translate_raster(gen, src, tmp_path / "strips.tif", config)
    found = re.search(r"translated in (\d+) vertical strips", caplog.text)
    return whole, strips, int(found.group(1)) if found else 1, gen.module.windows - 2 * n_whole


# --------------------------------------------------------------------------- the plan


@settings(max_examples=300, deadline=None)
@given(length=st.integers(1, 700), tile=st.integers(8, 64), frac=st.floats(0, 0.5),
       block=st.sampled_from([16, 32, 256]), strip_px=st.integers(1, 400))
def test_strips_partition_the_columns_and_run_every_window_touching_them(
        length, tile, frac, block, strip_px):
    ax = AxisLayout(length, tile, int(tile * frac))
    strips = plan_strips(ax, block, strip_px)
    assert strips[0].x0 == 0 and strips[-1].x1 == length
    for left, right in zip(strips, strips[1:], strict=False):
        assert left.x1 == right.x0 and left.x1 % block == 0  # whole blocks, written once
    for s in strips:
        assert s.width > 0
        touching = [c for c in range(ax.count)
                    if ax.start(c) < s.x1 and ax.start(c) + tile > s.x0]
        assert list(s.windows) == touching
        assert (s.c0, s.c1) == windows_touching(ax, s.x0, s.x1)
        read = np.concatenate([ax.source_index(c) for c in s.windows])
        assert s.r0 <= min(read.min(), s.x0) and max(read.max() + 1, s.x1) <= s.r1
    if strip_px >= length:
        assert len(strips) == 1
    else:  # at most strip_px wide (or one block), as few as can be
        most = max(block, strip_px // block * block)
        assert all(s.width <= most for s in strips)
        assert len(strips) == -(-length // most)
    # a boundary is crossed by at most two window columns (one where it can be)
    assert sum(len(s.windows) for s in strips) - ax.count <= 2 * (len(strips) - 1)


def test_strip_width_from_the_budget_and_the_environment(monkeypatch):
    monkeypatch.delenv(STRIP_ENV, raising=False)
    per_col = column_bytes(512, 64, 4, 1, 4, 1, 256)
    width = strip_width(per_col)
    assert 4096 <= width <= 16384  # the default model: thousands of px, not the raster
    assert width * per_col <= 256 * 2**20 < (width + 1) * per_col
    assert strip_width(per_col, budget_mb=1024) == pytest.approx(4 * width, abs=4)
    monkeypatch.setenv(STRIP_ENV, "300")
    assert strip_width(per_col) == 300
    for bad in ("0", "-5", "wide"):
        monkeypatch.setenv(STRIP_ENV, bad)
        with pytest.raises(Exception, match=f"^{STRIP_ENV}={bad}: give the strip width"):
            strip_width(per_col)


# --------------------------------------------------------------------------- same bytes


@pytest.mark.parametrize(("width", "height", "tile", "overlap", "blend", "strip_px"), [
    (613, 37, 32, 8, "cosine", 1),      # odd sizes, strips of one 256 px block
    (700, 70, 32, 8, "linear", 300),
    (531, 45, 32, 0, "none", 256),      # no overlap
    (530, 19, 64, 32, "cosine", 1),     # overlap of half the tile, one window row
    (777, 50, 48, 12, "none", 1),       # hard crops: zero weights on the margins
])
def test_strips_write_the_same_bytes_as_one_piece(make_raster, tmp_path, monkeypatch, caplog,
                                                  width, height, tile, overlap, blend, strip_px):
    src = make_raster("in.tif", width, height, count=3, seed=width)
    gen = generator(3)
    config = TranslateConfig(tile=tile, overlap=overlap, blend=blend, batch_size=3,
                             norm="window")
    whole, strips, count, extra = translate_both(gen, src, tmp_path, config, strip_px,
                                                      monkeypatch, caplog)
    a, b = contents(whole), contents(strips)
    assert a[0] == b[0] and a[1] == b[1]
    assert a[2] == b[2] and a[3] == b[3]
    assert count == -(-width // max(256, strip_px // 256 * 256))  # it ran in strips
    ax, ay = AxisLayout(width, tile, overlap), AxisLayout(height, tile, overlap)
    planned = plan_strips(ax, 256, strip_px)
    assert extra == (sum(len(s.windows) for s in planned) - ax.count) * ay.count
    assert (extra > 0) == (overlap > 0)  # windows crossing a boundary ran in both strips
    assert len(set(a[0])) > 10  # a real translation, not a constant


def test_strips_keep_nodata_masks_and_small_blocks(make_raster, tmp_path, monkeypatch, caplog):
    """Nodata in and out, masks written, 16 px blocks and strips narrower than a window."""
    src = make_raster("in.tif", 203, 61, count=4, nodata=0, nodata_box=(5, 40, 30, 140))
    gen = generator(4, nodata=0)
    config = TranslateConfig(tile=32, overlap=10, batch_size=2, norm="window",
                             creation_options=(("BLOCKXSIZE", "16"), ("BLOCKYSIZE", "16")))
    whole, strips, count, extra = translate_both(gen, src, tmp_path, config, 16,
                                                      monkeypatch, caplog)
    a, b = contents(whole), contents(strips)
    assert a == b
    assert a[2]["blockxsize"] == 16 and a[2]["nodata"] == 0
    mask = np.frombuffer(a[1], np.uint8).reshape(61, 203)
    assert (mask[5:40, 30:140] == 0).all() and (mask[40:] == 255).all()
    assert count == 13  # strips narrower than a window: most windows ran twice
    assert extra > 0


def test_strips_with_an_aoi_uint16_and_a_cog(make_raster, tmp_path, monkeypatch, caplog):
    """A part of the input cut by an AOI (outside: nodata), uint16, written as a COG."""
    import geopandas as gpd
    from shapely.geometry import Polygon

    src = make_raster("in.tif", 900, 40, count=2, dtype="uint16", nodata=0)
    with rasterio.open(src) as ds:
        t, crs = ds.transform, ds.crs
    corners = [t * (40, 3), t * (860, 3), t * (450, 35)]  # a triangle, in the raster's CRS
    aoi = tmp_path / "aoi.gpkg"
    gpd.GeoDataFrame(geometry=[Polygon(corners)], crs=crs).to_file(aoi)
    gen = generator(2, "uint16", nodata=0)
    config = TranslateConfig(tile=32, overlap=8, batch_size=4, norm="window", cog=True,
                             aoi=str(aoi))
    whole, strips, count, _ = translate_both(gen, src, tmp_path, config, 1, monkeypatch,
                                           caplog)
    a, b = contents(whole), contents(strips)
    assert a == b
    assert 0 < np.frombuffer(a[1], np.uint8).mean() < 200  # the triangle, not the block
    assert count == 4  # the part translated: 821 px, in strips of 256 px
    with rasterio.open(strips) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"


def test_an_untiled_output_is_translated_whole(make_raster, tmp_path, monkeypatch, caplog):
    """Blocks as wide as the raster would be rewritten once per strip: no strips then."""
    src = make_raster("in.tif", 300, 30, count=3)
    gen = generator(3)
    config = TranslateConfig(tile=32, overlap=8, norm="window",
                             creation_options=(("TILED", "NO"),))
    whole, strips, count, extra = translate_both(gen, src, tmp_path, config, 16, monkeypatch,
                                                 caplog)
    assert contents(whole) == contents(strips)
    assert (count, extra) == (1, 0)
    assert "300 px wide, more than the 16 px translated at a time" in caplog.text
    assert "the output is not tiled: translating it whole" in caplog.text


# --------------------------------------------------------------------------- the CLI


def test_cli_translates_in_strips_the_same_and_refuses_a_bad_width(make_raster, tmp_path,
                                                                    monkeypatch):
    src = make_raster("in.tif", 600, 40, count=3, nodata=0, nodata_box=(0, 10, 0, 50))
    ckpt = make_checkpoint(tmp_path / "model.safetensors", ngf=4, noise=0.05)
    args = ("translate", ckpt, src, "--tile", 32, "--overlap", 8, "-j", 1)
    monkeypatch.delenv(STRIP_ENV, raising=False)
    result = run_cli(*args, "-o", tmp_path / "whole.tif")
    assert result.exit_code == 0, result.output
    monkeypatch.setenv(STRIP_ENV, "256")
    result = run_cli(*args, "-o", tmp_path / "strips.tif")
    assert result.exit_code == 0, result.output
    assert contents(tmp_path / "whole.tif") == contents(tmp_path / "strips.tif")
    monkeypatch.setenv(STRIP_ENV, "narrow")
    result = run_cli(*args, "-o", tmp_path / "bad.tif")
    assert cli_error(result) == (f"Error: {STRIP_ENV}=narrow: give the strip width in "
                                 "pixels, a positive whole number, or unset it")
    assert not (tmp_path / "bad.tif").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
