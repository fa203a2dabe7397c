"""Windowed translation: window maths, exactness, georeference, nodata, seams, batches, errors."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from geogan.blend import AxisLayout, blend_weights
from geogan.checkpoint import LoadedGenerator
from geogan.contract.checkpoint import CheckpointMeta, GeneratorMeta
from geogan.contract.choices import WINDOW_BLENDS
from geogan.errors import Cancelled, CheckpointError, InputError, OutputError
from geogan.normalize import BandNorm, valid_mask
from geogan.translate import (
    TranslateConfig,
    expand_inputs,
    map_outputs,
    output_nodata,
    translate_files,
    translate_raster,
)

PROJECTED = "EPSG:26914"
GEOGRAPHIC = "EPSG:4326"

torch.set_num_threads(1)


# --------------------------------------------------------------------------- helpers


def identity_generator(bands: int = 3, dtype: str = "uint8", nodata: float | None = None,
                       norm: BandNorm | None = None) -> LoadedGenerator:
    """A generator whose output equals its input (in [-1, 1])."""
    norm = norm or BandNorm.full_range(dtype, bands, nodata)
    return LoadedGenerator(nn.Identity(), "a2b", norm, norm)


class _Recorder(nn.Module):
    """Identity that counts calls and can fail on the n-th."""

    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__()
        self.calls = 0
        self.fail_at = fail_at

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise RuntimeError("boom")
        return x


def instance_norm_net(bands: int, seed: int = 0) -> nn.Module:
    """A fixed random conv net with instance norm: its colours depend on each window's content."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(bands, 8, 3, padding=1, padding_mode="reflect"), nn.InstanceNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect"), nn.InstanceNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, bands, 3, padding=1, padding_mode="reflect"), nn.Tanh(),
    ).eval()


def read(path: Path) -> tuple[np.ndarray, dict]:
    with rasterio.open(path) as src:
        return src.read(), {"crs": src.crs, "transform": src.transform, "width": src.width,
                            "height": src.height, "nodata": src.nodata, "count": src.count,
                            "dtype": src.dtypes[0], "mask": src.dataset_mask(),
                            "profile": src.profile}


def assert_same_georeference(a: dict, b: dict) -> None:
    assert a["crs"] == b["crs"]
    assert a["transform"] == b["transform"]
    assert (a["width"], a["height"]) == (b["width"], b["height"])


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


CFG = TranslateConfig(tile=32, overlap=8, batch_size=3)


# --------------------------------------------------------------------------- window maths


@settings(max_examples=200, deadline=None)
@given(length=st.integers(1, 300), tile=st.integers(8, 64), frac=st.floats(0, 0.5))
def test_cores_partition_the_axis_and_windows_cover_it(length: int, tile: int,
                                                       frac: float) -> None:
    overlap = int(tile * frac)
    ax = AxisLayout(length, tile, overlap)
    hits = np.zeros(length, dtype=int)
    covered = np.zeros(length, dtype=int)
    for i, s in enumerate(ax.starts()):
        core = np.arange(s + ax.margin, s + ax.margin + ax.stride)
        hits[core[(core >= 0) & (core < length)]] += 1
        covered[max(s, 0):min(s + tile, length)] += 1
        assert ax.final_end(i) <= length
    assert (hits == 1).all()
    assert (covered >= 1).all()
    assert ax.pad_after >= 0
    assert ax.padded_length == ax.margin + length + ax.pad_after
    ends = [ax.final_end(i) for i in range(ax.count)]
    assert ends == sorted(ends) and ends[-1] == length
    mirrored = np.pad(np.arange(length), (ax.margin, ax.pad_after), mode="reflect")
    for i in range(ax.count):
        np.testing.assert_array_equal(ax.source_index(i),
                                      mirrored[i * ax.stride:i * ax.stride + tile])


@pytest.mark.parametrize("kind", WINDOW_BLENDS)
@pytest.mark.parametrize("tile,overlap", [(32, 8), (32, 16), (33, 7), (16, 0)])
def test_blend_weights_sum_to_one_between_windows(kind: str, tile: int, overlap: int) -> None:
    w = blend_weights(tile, overlap, kind)
    assert w.shape == (tile,) and w.max() <= 1.0 and w.min() >= 0.0
    if kind != "none":
        assert np.allclose(w, w[::-1])
    ax = AxisLayout(500, tile, overlap)
    total = ax.weight_totals(w)
    assert total.min() > 0.45  # every raster pixel gets a real weight, even at the edges
    inner = slice(tile, 500 - 2 * tile)  # away from the raster's first and last windows
    assert np.allclose(total[inner], 1.0)


def test_cosine_ramp_is_smooth_and_none_is_a_box() -> None:
    w = blend_weights(64, 16, "cosine")
    assert w[0] < 0.01 and w[15] > 0.99 and (w[16:48] == 1).all()
    assert np.all(np.diff(w[:16]) > 0)
    box = blend_weights(64, 16, "none")
    assert (box[:8] == 0).all() and (box[8:56] == 1).all() and (box[56:] == 0).all()
    with pytest.raises(ValueError):
        blend_weights(64, 40, "cosine")
    with pytest.raises(ValueError):
        blend_weights(64, 8, "gaussian")


# --------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("crs", [PROJECTED, GEOGRAPHIC])
@pytest.mark.parametrize("size", [(67, 45), (5, 3), (1, 1), (131, 97)])
@pytest.mark.parametrize("overlap", [0, 8])
def test_identity_reproduces_uint8_bit_exactly(make_raster, tmp_path, crs, size, overlap):
    src = make_raster("in.tif", *size, count=3, crs=crs, nodata=0)
    out = translate_raster(identity_generator(3, nodata=0), src, tmp_path / "out.tif",
                           TranslateConfig(tile=32, overlap=overlap, batch_size=3))
    a, ga = read(src)
    b, gb = read(out)
    assert_same_georeference(ga, gb)
    assert (gb["count"], gb["dtype"], gb["nodata"]) == (3, "uint8", 0)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("blend", WINDOW_BLENDS)
def test_identity_is_exact_for_every_blend_and_batch_size(make_raster, tmp_path, blend):
    src = make_raster("in.tif", 101, 77, count=4)
    for batch in (1, 7):
        out = translate_raster(identity_generator(4), src, tmp_path / f"{batch}.tif",
                               TranslateConfig(tile=32, overlap=12, blend=blend,
                                               batch_size=batch))
        np.testing.assert_array_equal(read(src)[0], read(out)[0])


def test_bf16_autocast_is_close_and_fp32_exact(make_raster, tmp_path):
    src = make_raster("in.tif", 50, 40, count=3)

    class Conv(nn.Module):  # an identity 1x1 convolution that records its output dtype
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)
            with torch.no_grad():
                self.conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1) * 0.999)
                self.conv.bias.zero_()
            self.dtypes: set[torch.dtype] = set()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            self.dtypes.add(y.dtype)
            return y

    norm = BandNorm.full_range("uint8", 3)
    a = read(src)[0].astype(int)
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        module = Conv()
        gen = LoadedGenerator(module, "a2b", norm, norm)
        out = translate_raster(gen, src, tmp_path / f"{precision}.tif",
                               TranslateConfig(tile=32, overlap=8, precision=precision))
        assert module.dtypes == {dtype}
        assert np.abs(read(out)[0].astype(int) - a).max() <= 2


def test_identity_uint16_and_float32_with_nodata(make_raster, tmp_path):
    src16 = make_raster("u16.tif", 45, 39, count=2, dtype="uint16")
    out = translate_raster(identity_generator(2, "uint16"), src16, tmp_path / "o16.tif", CFG)
    np.testing.assert_array_equal(read(src16)[0], read(out)[0])

    src = make_raster("dsm.tif", 53, 41, count=1, dtype="float32", nodata=-9999.0,
                      nodata_box=(5, 15, 30, 53))
    norm = BandNorm("float32", (-60.0,), (260.0,), -9999.0)
    out = translate_raster(identity_generator(norm=norm), src, tmp_path / "dsm_out.tif", CFG)
    a, ga = read(src)
    b, gb = read(out)
    assert gb["nodata"] == -9999.0 and gb["dtype"] == "float32"
    np.testing.assert_array_equal(ga["mask"], gb["mask"])
    valid = ga["mask"] > 0
    np.testing.assert_allclose(b[0][valid], a[0][valid], atol=1e-3)


def test_nodata_mask_is_kept_and_valid_pixels_never_read_as_nodata(make_raster, tmp_path):
    src = make_raster("in.tif", 70, 50, count=3, nodata=0, nodata_box=(10, 30, 0, 25))

    class Black(nn.Module):  # outputs -1 everywhere, i.e. 0 == nodata after denormalising
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.full_like(x, -1.0)

    norm = BandNorm.full_range("uint8", 3, 0)
    gen = LoadedGenerator(Black(), "a2b", norm, norm)
    out = translate_raster(gen, src, tmp_path / "out.tif", CFG)
    a, ga = read(src)
    b, gb = read(out)
    assert gb["nodata"] == 0
    np.testing.assert_array_equal(ga["mask"], gb["mask"])
    assert (b[:, 10:30, 0:25] == 0).all()
    assert valid_mask(b, 0).sum() == valid_mask(a, 0).sum()


def test_output_bands_and_dtype_follow_the_target_domain(make_raster, tmp_path):
    src = make_raster("in.tif", 40, 36, count=3, nodata=0, nodata_box=(0, 5, 0, 5))

    class Mean(nn.Module):  # 3 bands -> 1
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=1, keepdim=True)

    out_norm = BandNorm("float32", (0.0,), (1.0,), -1.0)
    gen = LoadedGenerator(Mean(), "a2b", BandNorm.full_range("uint8", 3, 0), out_norm)
    out = translate_raster(gen, src, tmp_path / "out.tif", CFG)
    a, ga = read(src)
    b, gb = read(out)
    assert (gb["count"], gb["dtype"], gb["nodata"]) == (1, "float32", -1.0)
    assert_same_georeference(ga, gb)
    np.testing.assert_array_equal(ga["mask"], gb["mask"])
    valid = ga["mask"] > 0
    expected = a.astype(np.float64).mean(axis=0) / 255.0
    np.testing.assert_allclose(b[0][valid], expected[valid], atol=1e-5)
    prof = gb["profile"]
    assert prof["tiled"] and prof["compress"] == "zstd" and prof["blockxsize"] == 256


def test_output_nodata_choice() -> None:
    u8 = BandNorm.full_range("uint8", 3)
    assert output_nodata(None, u8) is None
    assert output_nodata(0.0, u8) == 0.0
    assert output_nodata(-9999.0, u8) == 0.0  # does not fit uint8
    assert output_nodata(0.0, BandNorm.full_range("uint8", 3, 255)) == 255.0
    assert np.isnan(output_nodata(float("nan"), BandNorm("float32", (0.0,), (1.0,))))


def test_real_checkpoint_keeps_georeference_and_mask(make_raster, tmp_path, tiny_checkpoint):
    for crs in (PROJECTED, GEOGRAPHIC):
        src = make_raster(f"in_{crs[-4:]}.tif", 37, 29, count=3, crs=crs, nodata=0,
                          nodata_box=(0, 6, 20, 37))
        out = translate_files(tiny_checkpoint, [src], tmp_path / f"out_{crs[-4:]}.tif", CFG)[0]
        a, ga = read(src)
        b, gb = read(out)
        assert_same_georeference(ga, gb)
        assert (gb["count"], gb["dtype"], gb["nodata"]) == (3, "uint8", 0)
        np.testing.assert_array_equal(ga["mask"], gb["mask"])
        assert b[:, ga["mask"] > 0].std() > 0  # a real translation, not a constant


def test_cog_output_is_a_cloud_optimized_geotiff(make_raster, tmp_path):
    src = make_raster("in.tif", 600, 530, count=3)
    out = translate_raster(identity_generator(3), src, tmp_path / "out.tif",
                           TranslateConfig(tile=128, overlap=16, batch_size=8, cog=True))
    with rasterio.open(out) as dst:
        assert dst.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert dst.overviews(1)
        np.testing.assert_array_equal(dst.read(), read(src)[0])
    assert leftovers(tmp_path) == []


def test_edge_windows_are_mirrored_from_the_raster(make_raster, tmp_path):
    """Every window the generator sees equals the raster padded by reflection, then cut."""
    src = make_raster("in.tif", 45, 7, count=2)
    seen: list[torch.Tensor] = []

    class Spy(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x.clone())
            return x

    norm = BandNorm.full_range("uint8", 2)
    gen = LoadedGenerator(Spy(), "a2b", norm, norm)
    translate_raster(gen, src, tmp_path / "out.tif", TranslateConfig(tile=16, overlap=6,
                                                                     batch_size=4))
    data = read(src)[0]
    ax, ay = AxisLayout(45, 16, 6), AxisLayout(7, 16, 6)
    padded = np.pad(data, ((0, 0), (ay.margin, ay.pad_after), (ax.margin, ax.pad_after)),
                    mode="reflect")
    windows = torch.cat(seen).numpy()
    assert len(windows) == ax.count * ay.count
    for k, w in enumerate(windows):
        r, c = divmod(k, ax.count)
        expected = padded[:, r * 10:r * 10 + 16, c * 10:c * 10 + 16]
        np.testing.assert_allclose(w, norm.to_model(expected), atol=1e-6)


# --------------------------------------------------------------------------- seams


def _seam_ratios(out: np.ndarray, stride: int) -> tuple[float, float]:
    """Mean |difference| across core boundaries / across all other neighbouring pixels."""
    o = out.astype(np.float64)
    ratios = []
    for axis, n in ((2, o.shape[2]), (1, o.shape[1])):
        d = np.abs(np.diff(o, axis=axis)).mean(axis=tuple(i for i in (0, 1, 2) if i != axis))
        edges = [k * stride - 1 for k in range(1, -(-n // stride))]
        inner = np.ones(d.shape, dtype=bool)
        inner[edges] = False
        ratios.append(float(d[edges].mean() / d[inner].mean()))
    return ratios[0], ratios[1]


@pytest.mark.parametrize("seed", [0, 3])
def test_blending_leaves_no_seams_with_instance_norm(make_raster, tmp_path, seed):
    """Tolerance: with blending on, the mean |difference| between neighbouring pixels across
    the tile boundaries is at most 10% above that between interior neighbours.

    The input is a smooth gradient, the hardest case: instance norm with each window's own
    statistics (``--norm window``) gives each window its own colours, so hard crops
    (blend "none") show seams 3-5x the interior. With whole-raster statistics
    (``--norm global``) even hard crops show none."""
    w, h = 192, 160
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    bands = [0.6 * xx / w + 0.3 * yy / h + 0.15 * np.sin(xx / (5 + b)) * np.cos(yy / (7 + b))
             for b in range(3)]
    unit = np.stack(bands)
    data = ((unit - unit.min()) / np.ptp(unit) * 250 + 3).astype(np.uint8)
    src = make_raster("in.tif", data=data)
    norm = BandNorm.full_range("uint8", 3)
    gen = LoadedGenerator(instance_norm_net(3, seed), "a2b", norm, norm)
    tile, overlap = 64, 32
    ratios = {}
    for blend in WINDOW_BLENDS:
        out = translate_raster(gen, src, tmp_path / f"{blend}.tif",
                               TranslateConfig(tile=tile, overlap=overlap, blend=blend,
                                               batch_size=4, norm="window"))
        ratios[blend] = _seam_ratios(read(out)[0], tile - overlap)
    assert min(ratios["none"]) > 2.0, ratios  # the measure sees seams where there are some
    for blend in ("cosine", "linear"):
        assert max(ratios[blend]) <= 1.10, ratios
    out = translate_raster(gen, src, tmp_path / "global.tif",
                           TranslateConfig(tile=tile, overlap=overlap, blend="none",
                                           batch_size=4, norm="global"))
    assert max(_seam_ratios(read(out)[0], tile - overlap)) <= 1.10


# --------------------------------------------------------------------------- input checks


def test_band_count_mismatch_and_bands_option(make_raster, tmp_path):
    src = make_raster("four.tif", 40, 30, count=4)
    gen = identity_generator(3)
    with pytest.raises(InputError, match=r"has 4 band\(s\) but .* expects 3.*--bands 1,2,3"):
        translate_raster(gen, src, tmp_path / "out.tif", CFG)
    assert not (tmp_path / "out.tif").exists()
    out = translate_raster(gen, src, tmp_path / "out.tif",
                           TranslateConfig(tile=32, overlap=8, bands=(4, 2, 1)))
    np.testing.assert_array_equal(read(out)[0], read(src)[0][[3, 1, 0]])
    with pytest.raises(InputError, match="--bands 5 is out of range"):
        translate_raster(gen, src, tmp_path / "o2.tif",
                         TranslateConfig(tile=32, overlap=8, bands=(1, 2, 5)))


def test_dtype_mismatch_is_a_clear_error(make_raster, tmp_path):
    src = make_raster("u16.tif", 20, 20, count=3, dtype="uint16")
    with pytest.raises(InputError, match="is uint16 but .* trained on uint8"):
        translate_raster(identity_generator(3), src, tmp_path / "out.tif", CFG)
    assert leftovers(tmp_path) == [] and not (tmp_path / "out.tif").exists()


def test_unreadable_input_and_unwritable_output(make_raster, tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00 this is not a tiff")
    with pytest.raises(InputError, match="bad.tif"):
        translate_raster(identity_generator(3), bad, tmp_path / "out.tif", CFG)
    assert not (tmp_path / "out.tif").exists()
    src = make_raster("in.tif", 20, 20)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        translate_raster(identity_generator(3), src, blocker / "out.tif", CFG)
    assert leftovers(tmp_path) == []


def test_config_validation_names_the_option():
    with pytest.raises(InputError, match="--overlap"):
        TranslateConfig(tile=32, overlap=20)
    with pytest.raises(InputError, match="--blend"):
        TranslateConfig(blend="gauss")
    with pytest.raises(InputError, match="--skip-existing and --overwrite"):
        TranslateConfig(skip_existing=True, overwrite=True)
    with pytest.raises(InputError, match="--bands"):
        TranslateConfig(bands=(0, 1))


def test_tile_must_suit_the_architecture(make_raster, tmp_path):
    src = make_raster("in.tif", 20, 20)
    module = nn.Identity()
    module.size_multiple = 256  # type: ignore[assignment]
    norm = BandNorm.full_range("uint8", 3)
    meta = CheckpointMeta("pix2pix", {"a2b": GeneratorMeta("G_A2B", "unet_256", {})}, {})
    gen = LoadedGenerator(module, "a2b", norm, norm, meta)
    with pytest.raises(InputError, match="--tile 32 does not suit the unet_256 .* multiple of 256"):
        translate_raster(gen, src, tmp_path / "out.tif", CFG)


def test_generator_changing_the_window_shape_is_reported(make_raster, tmp_path):
    src = make_raster("in.tif", 20, 20)
    norm = BandNorm.full_range("uint8", 3)
    gen = LoadedGenerator(nn.AvgPool2d(2), "a2b", norm, norm)
    with pytest.raises(CheckpointError, match="--tile"):
        translate_raster(gen, src, tmp_path / "out.tif", CFG)
    assert leftovers(tmp_path) == [] and not (tmp_path / "out.tif").exists()


# --------------------------------------------------------------------------- safety


def test_existing_output_needs_overwrite(make_raster, tmp_path):
    src = make_raster("in.tif", 20, 20)
    out = tmp_path / "out.tif"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="--overwrite"):
        translate_raster(identity_generator(3), src, out, CFG)
    assert out.read_bytes() == b"keep me"
    translate_raster(identity_generator(3), src, out,
                     TranslateConfig(tile=32, overlap=8, overwrite=True))
    np.testing.assert_array_equal(read(out)[0], read(src)[0])
    with pytest.raises(OutputError, match="replace its input"):
        translate_raster(identity_generator(3), src, src,
                         TranslateConfig(tile=32, overlap=8, overwrite=True))


def test_cancel_stops_and_leaves_nothing(make_raster, tmp_path):
    src = make_raster("in.tif", 200, 160)
    module = _Recorder()
    norm = BandNorm.full_range("uint8", 3)
    gen = LoadedGenerator(module, "a2b", norm, norm)
    threads = threading.active_count()
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return module.calls >= 3

    with pytest.raises(Cancelled, match="in.tif cancelled"):
        translate_raster(gen, src, tmp_path / "out.tif",
                         TranslateConfig(tile=32, overlap=8, batch_size=1), cancel=cancel)
    assert module.calls == 3  # stopped right after the batch where cancel turned true
    assert not (tmp_path / "out.tif").exists() and leftovers(tmp_path) == []
    assert threading.active_count() == threads


def test_failure_in_the_generator_leaves_nothing(make_raster, tmp_path):
    src = make_raster("in.tif", 150, 120)
    norm = BandNorm.full_range("uint8", 3)
    gen = LoadedGenerator(_Recorder(fail_at=4), "a2b", norm, norm)
    threads = threading.active_count()
    for cog in (False, True):
        with pytest.raises(RuntimeError, match="boom"):
            translate_raster(gen, src, tmp_path / "out.tif",
                             TranslateConfig(tile=32, overlap=8, batch_size=2, cog=cog))
        gen.module.calls = 0
        assert not (tmp_path / "out.tif").exists() and leftovers(tmp_path) == []
    assert threading.active_count() == threads


def test_progress_reaches_the_total(make_raster, tmp_path):
    src = make_raster("in.tif", 90, 70)
    seen: list[tuple[float, float]] = []
    translate_raster(identity_generator(3), src, tmp_path / "out.tif", CFG,
                     progress=lambda d, t, **info: seen.append((d, t)))
    done = [d for d, _ in seen]
    assert done == sorted(done)
    assert seen[-1][0] == pytest.approx(90 * 70 / 1e6) == seen[-1][1]


# --------------------------------------------------------------------------- batches


def test_expand_inputs_and_map_outputs(make_raster, tmp_path):
    a = make_raster("d/a.tif", 10, 10)
    b = make_raster("d/b.tif", 10, 10)
    (tmp_path / "d" / ".a.tmp.tif").write_text("temp")
    (tmp_path / "d" / "notes.txt").write_text("x")
    assert expand_inputs([tmp_path / "d"]) == [a, b]
    assert expand_inputs([str(tmp_path / "d" / "*.tif"), a]) == [a, b]
    with pytest.raises(InputError, match="no files match"):
        expand_inputs([str(tmp_path / "nothing*.tif")])
    with pytest.raises(InputError, match="does not exist"):
        expand_inputs([tmp_path / "missing.tif"])
    assert map_outputs([a], tmp_path / "o.tif") == [tmp_path / "o.tif"]
    assert map_outputs([a, b], tmp_path / "out") == [tmp_path / "out" / "a.tif",
                                                             tmp_path / "out" / "b.tif"]
    c = make_raster("e/a.tif", 10, 10)
    with pytest.raises(InputError, match="both be written"):
        map_outputs([a, c], tmp_path / "out")
    with pytest.raises(OutputError, match="replace its input"):
        map_outputs([a, b], tmp_path / "d")


@pytest.fixture
def identity_checkpoint(monkeypatch):
    """translate_files with an identity generator in place of a checkpoint."""
    loads: list[str] = []

    def fake_load(path, direction="a2b", device="cpu"):
        loads.append(direction)
        return identity_generator(3)

    monkeypatch.setattr("geogan.translate.load_generator", fake_load)
    return loads


def test_batch_resume_with_skip_existing(make_raster, tmp_path, identity_checkpoint):
    srcs = [make_raster(f"in/r{i}.tif", 40 + i, 30, seed=i) for i in range(3)]
    out = tmp_path / "out"
    state = {"file": ""}

    def progress(done: float, total: float, **info) -> None:
        state["file"] = str(info["file"])

    with pytest.raises(Cancelled):
        translate_files("ckpt", [tmp_path / "in"], out, CFG, progress=progress,
                        cancel=lambda: state["file"] == "r1.tif")
    assert sorted(p.name for p in out.iterdir()) == ["r0.tif"]  # r1 half-done: removed
    first = (out / "r0.tif").stat().st_mtime_ns

    with pytest.raises(OutputError, match="r0.tif already exists"):
        translate_files("ckpt", [tmp_path / "in"], out, CFG)

    files: set[str] = set()
    paths = translate_files("ckpt", [tmp_path / "in"], out,
                            TranslateConfig(tile=32, overlap=8, skip_existing=True),
                            progress=lambda d, t, **info: files.add(str(info["file"])))
    assert files == {"r1.tif", "r2.tif"}
    assert (out / "r0.tif").stat().st_mtime_ns == first
    assert paths == [out / "r0.tif", out / "r1.tif", out / "r2.tif"]
    for s, p in zip(srcs, paths, strict=True):
        np.testing.assert_array_equal(read(s)[0], read(p)[0])
    assert leftovers(out) == []
    # nothing left to do: the generator is not even loaded
    n = len(identity_checkpoint)
    translate_files("ckpt", [tmp_path / "in"], out,
                    TranslateConfig(tile=32, overlap=8, skip_existing=True))
    assert len(identity_checkpoint) == n


def test_files_are_shared_out_across_ranks(make_raster, tmp_path, identity_checkpoint,
                                           monkeypatch):
    for i in range(5):
        make_raster(f"in/r{i}.tif", 20, 20, seed=i)
    monkeypatch.setenv("WORLD_SIZE", "2")
    got = {}
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        got[rank] = [p.name for p in translate_files("ckpt", [tmp_path / "in"], tmp_path / "o",
                                                     CFG)]
    assert got == {0: ["r0.tif", "r2.tif", "r4.tif"], 1: ["r1.tif", "r3.tif"]}
    assert len(list((tmp_path / "o").iterdir())) == 5
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(InputError, match="RANK=2"):
        translate_files("ckpt", [tmp_path / "in"], tmp_path / "o2", CFG)


def test_batch_checks_every_input_before_starting(make_raster, tmp_path, identity_checkpoint):
    make_raster("in/a.tif", 20, 20)
    make_raster("in/b.tif", 20, 20, count=4)
    with pytest.raises(InputError, match="b.tif has 4 band"):
        translate_files("ckpt", [tmp_path / "in"], tmp_path / "out", CFG)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
