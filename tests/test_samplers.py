"""Random windows straight from rasters (geogan.samplers) and training from them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner
from conftest import GEOGRAPHIC, PROJECTED, cli_error, train_until_cancelled
from rasterio.transform import from_origin
from rasterio.windows import Window as RioWindow
from rasterio.windows import transform as window_transform

from geogan.checkpoint import load_checkpoint, read_metadata
from geogan.cli import main
from geogan.errors import InputError
from geogan.samplers import RasterWindowDataset, WindowConfig, open_inputs
from geogan.train import TrainConfig, resume_config, train

torch.set_num_threads(1)

TINY = {"generator": "resnet_6blocks", "ngf": 8, "ndf": 8, "crop": 32}
TINY_CLI = ["--crop", "32", "--ngf", "8", "--ndf", "8", "--generator", "resnet_6blocks"]


def dataset(a, b, crop: int = 16, model: str = "cyclegan", **windows) -> RasterWindowDataset:
    data = open_inputs(model, a, b, crop, windows=WindowConfig(**windows))
    assert isinstance(data.dataset, RasterWindowDataset)
    return data.dataset


def window_pixels(path: Path, col: int, row: int, crop: int) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(window=RioWindow(col, row, crop, crop), boundless=True,
                        fill_value=src.nodata or 0)


def write_aoi(path: Path, ring: list[tuple[float, float]], crs: str) -> Path:
    doc = {"type": "FeatureCollection",
           "crs": {"type": "name", "properties": {"name": crs}},
           "features": [{"type": "Feature", "properties": {},
                         "geometry": {"type": "Polygon", "coordinates": [ring]}}]}
    path.write_text(json.dumps(doc))
    return path


def assert_clean_error(result, fragment: str) -> None:
    assert fragment in cli_error(result), result.output


def run_cli(*args: str):
    return CliRunner().invoke(main, ["--progress", "none", "train", *args])


# -- where windows fall ------------------------------------------------------------------------

@pytest.mark.parametrize("crs", [PROJECTED, GEOGRAPHIC])
def test_windows_avoid_nodata(make_raster, crs: str) -> None:
    a = make_raster("a.tif", width=83, height=61, crs=crs, nodata=0,
                    nodata_box=(0, 61, 40, 60))  # a nodata stripe down the middle
    b = make_raster("b.tif", width=50, height=50, crs=crs, seed=3)
    ds = dataset(a, b, crop=16)
    cols = set()
    for seed in range(300):
        win, _ = ds.windows(seed)
        assert 0 <= win.col <= 83 - 16 and 0 <= win.row <= 61 - 16
        assert win.col + 16 <= 40 or win.col >= 60  # never over the stripe (--max-nodata 0)
        assert (window_pixels(a, win.col, win.row, 16) != 0).any(axis=0).all()
        cols.add(win.col)
    assert min(cols) == 0 and max(cols) == 83 - 16  # both sides, up to the raster's edges
    assert any(c >= 60 for c in cols) and any(c + 16 <= 40 for c in cols)
    # the pixels handed to the model are the file's at that window
    win, _ = ds.windows(11)
    np.testing.assert_array_equal(ds.a.read(win)[0][0], window_pixels(a, win.col, win.row, 16))


def test_max_nodata_allows_partly_empty_windows(make_raster) -> None:
    a = make_raster("a.tif", width=64, height=64, nodata=0, nodata_box=(0, 64, 0, 32))
    b = make_raster("b.tif", width=40, height=40, seed=2)
    strict = dataset(a, b, crop=16)
    loose = dataset(a, b, crop=16, max_nodata=0.5)
    fractions = []
    for seed in range(200):
        w0, _ = strict.windows(seed)
        assert w0.col >= 32
        w1, _ = loose.windows(seed)
        px = window_pixels(a, w1.col, w1.row, 16)
        frac = float((px == 0).all(axis=0).mean())
        assert frac <= 0.5
        fractions.append(frac)
    assert max(fractions) > 0  # some windows do reach into the nodata half


def test_mask_is_respected_without_nodata(make_raster, tmp_path: Path) -> None:
    a = make_raster("a.tif", width=64, height=48, crs=GEOGRAPHIC)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(a, "r+") as dst:
        mask = np.full((48, 64), 255, dtype=np.uint8)
        mask[:, 20:44] = 0  # masked, though the pixel values are ordinary
        dst.write_mask(mask)
    b = make_raster("b.tif", width=40, height=40, seed=4)
    ds = dataset(a, b, crop=16)
    for seed in range(200):
        win, _ = ds.windows(seed)
        assert win.col + 16 <= 20 or win.col >= 44
    # the area weighting counts only the unmasked pixels (64 - 24 columns of 48 rows)
    assert ds.a.valid_px == pytest.approx(40 * 48, rel=0.05)


def test_min_std_rejects_flat_windows(make_raster) -> None:
    data = np.full((3, 48, 96), 120, dtype=np.uint8)
    data[:, :, 48:] = np.random.default_rng(0).integers(0, 255, (3, 48, 48))  # texture east
    a = make_raster("a.tif", data=data)
    b = make_raster("b.tif", width=40, height=40, seed=5)
    ds = dataset(a, b, crop=16, min_std=2.0)
    for seed in range(150):
        win, _ = ds.windows(seed)
        assert win.col + 16 > 48  # some texture in every window


def test_aoi_in_another_crs_keeps_windows_inside(make_raster, tmp_path: Path) -> None:
    from pyproj import Transformer

    a = make_raster("a.tif", width=120, height=80, crs=PROJECTED)  # 5 m pixels
    b = make_raster("b.tif", width=40, height=40, seed=6)
    with rasterio.open(a) as src:
        t = src.transform
    # a polygon over the western 60 columns, given in geographic degrees
    to_geo = Transformer.from_crs(PROJECTED, GEOGRAPHIC, always_xy=True)
    corners = [t * (0, 0), t * (60, 0), t * (60, 80), t * (0, 80), t * (0, 0)]
    ring = [to_geo.transform(x, y) for x, y in corners]
    aoi = write_aoi(tmp_path / "west.geojson", ring, GEOGRAPHIC)
    ds = dataset(a, b, crop=16, aoi_a=aoi)
    cols = []
    for seed in range(300):
        win, win_b = ds.windows(seed)
        cols.append(win.col)
        # inside the AOI, allowing the sub-pixel bend of the reprojected edge
        assert win.col >= 0 and win.col + 16 <= 60 + 1
        assert win_b is not None  # B has no AOI: windows anywhere in B
    assert max(cols) + 16 >= 58  # windows reach the AOI's edge
    assert ds.a.valid_px == pytest.approx(60 * 80, rel=0.05)


def test_area_weighting_across_files(make_raster) -> None:
    small = make_raster("a/small.tif", width=64, height=64, seed=1)
    large = make_raster("a/large.tif", width=128, height=64, seed=2)
    holed = make_raster("a/holed.tif", width=128, height=64, seed=3, nodata=0,
                        nodata_box=(0, 64, 0, 64))  # half nodata: as much ground as small
    b = make_raster("b.tif", width=40, height=40, seed=4)
    ds = dataset([small, large, holed], [b], crop=16)
    n = 3000
    counts = np.bincount([ds.windows(s)[0].source for s in range(n)], minlength=3)
    expected = np.array([1, 2, 1]) / 4 * n
    sigma = np.sqrt(expected * (1 - expected / n))
    assert (np.abs(counts - expected) < 4 * sigma).all(), counts
    # an epoch is the valid ground in windows: (64*64 + 128*64 + 64*64) / 16**2
    assert len(ds) == math.ceil((64 * 64 + 128 * 64 + 64 * 64) / 16 ** 2)


def test_raster_smaller_than_the_crop_is_read_padded(make_raster) -> None:
    a = make_raster("a.tif", width=12, height=40, nodata=0)
    b = make_raster("b.tif", width=40, height=40, seed=2)
    ds = dataset(a, b, crop=16, max_nodata=0.5)
    win, _ = ds.windows(0)
    assert 12 - 16 <= win.col <= 0  # the window spans the raster's width and hangs over it
    chip = ds.a.read(win)[0][0]
    assert chip.shape == (3, 16, 16)
    inside = slice(-win.col, -win.col + 12)
    np.testing.assert_array_equal(chip[:, :, inside], window_pixels(a, 0, win.row, 16)[:, :, :12])
    outside = np.ones(16, dtype=bool)
    outside[inside] = False
    assert (chip[:, :, outside] == 0).all()  # padded with nodata


# -- pairs -------------------------------------------------------------------------------------

def _ground_raster(path: Path, transform, width: int, height: int, crs: str = PROJECTED) -> Path:
    """Two float bands holding the ground x and y of each pixel's centre."""
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    xs, ys = transform * (cols, rows)
    data = np.stack([xs, ys]).astype(np.float64)
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=2,
                       dtype="float64", crs=crs, transform=transform, nodata=-9999.0) as dst:
        dst.write(data)
    return path


def test_pairs_are_colocated_within_half_a_pixel(tmp_path: Path) -> None:
    a = _ground_raster(tmp_path / "a.tif", from_origin(485900.0, 5209247.0, 5.0, 5.0), 90, 70)
    # B on another grid: 3 m pixels, origin 7.3 m east and 4.1 m south of A's
    b = _ground_raster(tmp_path / "b.tif", from_origin(485907.3, 5209242.9, 3.0, 3.0), 140, 110)
    ds = dataset([a], [b], crop=16, model="pix2pix")
    assert ds.paired and ds.b is None
    for seed in range(40):
        win, _ = ds.windows(seed)
        (chip_a, chip_b), _ = ds.a.read(win)
        # A holds the ground coordinates of its pixels; B read over A's window, resampled
        # onto A's grid, must hold the same ground coordinates
        with rasterio.open(a) as src:
            t = window_transform(RioWindow(win.col, win.row, 16, 16), src.transform)
        cx, cy = t * (8.0, 8.0)
        assert abs(chip_a[0, 8, 8] - (cx + 2.5)) < 1e-6 and abs(chip_a[1, 8, 8] - (cy - 2.5)) < 1e-6
        assert np.abs(chip_b - chip_a).max() < 2.5  # half of A's 5 m pixel
    # the overlap only: windows start inside B's footprint on A's grid
    assert all(ds.windows(s)[0].col >= 2 for s in range(100))


def test_pix2pix_reports_rasters_without_partner(tmp_path: Path, caplog) -> None:
    a = _ground_raster(tmp_path / "a1.tif", from_origin(485900.0, 5209247.0, 5.0, 5.0), 60, 60)
    far = _ground_raster(tmp_path / "a2.tif", from_origin(495900.0, 5209247.0, 5.0, 5.0), 60, 60)
    b = _ground_raster(tmp_path / "b.tif", from_origin(485900.0, 5209247.0, 5.0, 5.0), 60, 60)
    ds = dataset([a, far], [b], crop=16, model="pix2pix")
    assert {s.path for s in ds.a.sources} == {a}
    assert "a2.tif" in caplog.text and "overlap no raster of `b`" in caplog.text


# -- randomness --------------------------------------------------------------------------------

def test_windows_are_deterministic_under_a_seed(make_raster) -> None:
    a = make_raster("a.tif", width=70, height=50)
    b = make_raster("b.tif", width=60, height=60, seed=9)
    one, two = dataset(a, b, crop=16), dataset(a, b, crop=16)
    for seed in (0, 1, 12345):
        assert one.windows(seed) == two.windows(seed)
        x, y = one[(0, seed)], two[(5, seed)]
        assert torch.equal(x["A"], y["A"]) and torch.equal(x["B"], y["B"])
    assert len({one.windows(s) for s in range(50)}) > 40  # seeds give different windows


def test_loader_workers_draw_the_same_samples(make_raster) -> None:
    from geogan.datasets import EpochSampler

    a = make_raster("a.tif", width=70, height=50)
    b = make_raster("b.tif", width=60, height=60, seed=9)
    ds = dataset(a, b, crop=16)
    batches = []
    for workers in (0, 2):
        sampler = EpochSampler(len(ds), seed=3)
        loader = torch.utils.data.DataLoader(ds, batch_size=4, sampler=sampler,
                                             num_workers=workers)
        batches.append(torch.cat([batch["A"] for batch in loader]))
    assert torch.equal(batches[0], batches[1])


def _raster_pair(make_raster) -> tuple[Path, Path]:
    return (make_raster("r/a.tif", width=90, height=70, seed=1),
            make_raster("r/b.tif", width=80, height=80, seed=2))


def test_resume_continues_the_same_sequence(tmp_path: Path, make_raster) -> None:
    a, b = _raster_pair(make_raster)
    cfg = {"a": a, "b": b, "max_steps": 5, "batch_size": 2, "pool_size": 2, "log_every": 1,
           "preview_every": 100, "save_every": 100, **TINY}
    train(TrainConfig(output=tmp_path / "straight", **cfg))
    stopped = tmp_path / "stopped"
    train_until_cancelled(TrainConfig(output=stopped, **cfg))
    state = read_metadata(stopped / "train_state.safetensors")
    assert state["sampler"] == {"seed": 0, "epoch": 0, "position": 4}
    train(resume_config(stopped))
    ref, got = load_checkpoint(tmp_path / "straight")[0], load_checkpoint(stopped)[0]
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=0, atol=1e-6, msg=k)


# -- through the CLI ---------------------------------------------------------------------------

def test_cli_trains_from_rasters_and_translate_uses_the_checkpoint(tmp_path: Path,
                                                                   make_raster) -> None:
    a1 = make_raster("2009/a1.tif", width=70, height=50, count=4, nodata=0, seed=1)
    a2 = make_raster("2009/a2.tif", width=45, height=60, count=4, nodata=0, seed=2)
    make_raster("2020/b.tif", width=64, height=64, count=4, seed=3)
    out = tmp_path / "run"
    # --a with several values, as the shell expands 2009/*.tif
    res = run_cli("--a", str(a1), str(a2), "--b", str(tmp_path / "2020" / "*.tif"), "-o",
                  str(out), "--max-steps", "2", "--log-every", "1", *TINY_CLI)
    assert res.exit_code == 0, res.output
    meta = read_metadata(out)
    assert meta["training"]["layout"] == "raster_windows"
    assert meta["domains"]["a"]["name"] == "2009" and meta["domains"]["b"]["name"] == "b"
    assert meta["domains"]["a"]["bands"] == 4 and meta["domains"]["a"]["nodata"] == 0
    state = read_metadata(out / "train_state.safetensors")
    assert state["config"]["a"] == [str(a1.absolute()), str(a2.absolute())]

    translated = tmp_path / "a2_as_b.tif"
    res = CliRunner().invoke(main, ["--progress", "none", "translate", str(out), str(a2),
                                    "-o", str(translated), "--tile", "32", "--overlap", "8"])
    assert res.exit_code == 0, res.output
    with rasterio.open(a2) as src, rasterio.open(translated) as dst:
        assert dst.crs == src.crs and dst.transform == src.transform
        assert (dst.width, dst.height, dst.count) == (src.width, src.height, 4)

    res = run_cli("-o", str(out), "--resume", "--max-steps", "3")
    assert res.exit_code == 0, res.output
    assert read_metadata(out)["step"] == 3
    res = run_cli("-o", str(out), "--resume", "--max-nodata", "0.5")
    assert_clean_error(res, "differs from the run's")


def test_cli_pix2pix_from_rasters(tmp_path: Path) -> None:
    a = _ground_raster(tmp_path / "a.tif", from_origin(485900.0, 5209247.0, 5.0, 5.0), 60, 60)
    b = _ground_raster(tmp_path / "b.tif", from_origin(485907.3, 5209242.9, 3.0, 3.0), 90, 90)
    out = tmp_path / "run"
    res = run_cli("--model", "pix2pix", "--a", str(a), "--b", str(b), "-o", str(out),
                  "--max-steps", "1", *TINY_CLI)
    assert res.exit_code == 0, res.output
    assert read_metadata(out)["training"]["layout"] == "paired_raster_windows"


@pytest.mark.parametrize("case", ["bands", "dtype", "no_window", "all_nodata", "aoi_outside",
                                  "no_overlap", "folder_options", "folder_and_files",
                                  "no_match", "aoi_twice"])
def test_cli_bad_raster_inputs_fail_cleanly(case: str, tmp_path: Path, make_raster) -> None:
    a = make_raster("a/one.tif", width=64, height=64, nodata=0, seed=1)
    b = make_raster("b/one.tif", width=64, height=64, seed=2)
    args = ["--a", str(a), "--b", str(b)]
    extra: list[str] = []
    if case == "bands":
        other = make_raster("a/two.tif", width=64, height=64, count=4, seed=3)
        args = ["--a", str(a), str(other), "--b", str(b)]
        expect = "all rasters of --a must have the same bands"
    elif case == "dtype":
        other = make_raster("b/two.tif", width=64, height=64, dtype="uint16", seed=3)
        args = ["--a", str(a), "--b", str(b), str(other)]
        expect = "all rasters of --b must have one dtype"
    elif case == "no_window":
        extra = ["--min-std", "1000"]
        expect = "--a: no 32 px window passes --max-nodata 0 and --min-std 1000"
    elif case == "all_nodata":
        empty = make_raster("a/empty.tif", width=64, height=64, nodata=0,
                            nodata_box=(0, 64, 0, 64))
        args = ["--a", str(empty), "--b", str(b)]
        expect = "holds no valid pixels"
    elif case == "aoi_outside":
        aoi = write_aoi(tmp_path / "far.geojson", [(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)],
                        GEOGRAPHIC)
        extra = ["--aoi", str(aoi)]
        expect = "covers no valid pixels of --a"
    elif case == "no_overlap":
        far = make_raster("b/far.tif", width=64, height=64, seed=2,
                          transform=from_origin(600000.0, 5209247.0, 5.0, 5.0))
        args = ["--model", "pix2pix", "--generator", "resnet_6blocks", "--a", str(a), "--b",
                str(far)]
        expect = "no raster of --a overlaps a raster of --b"
    elif case == "folder_options":
        args = ["--a", str(tmp_path / "a"), "--b", str(tmp_path / "b")]
        extra = ["--max-nodata", "0.2"]
        expect = "--max-nodata apply to rasters"
    elif case == "folder_and_files":
        args = ["--a", str(tmp_path / "a"), str(a), "--b", str(b)]
        expect = "is a folder (read as chips) among other inputs"
    elif case == "no_match":
        args = ["--a", str(tmp_path / "nothing" / "*.tif"), "--b", str(b)]
        expect = "no files match"
    else:
        extra = ["--aoi", str(tmp_path / "x.gpkg"), "--aoi-a", str(tmp_path / "y.gpkg")]
        expect = "do not combine it with --aoi-a/--aoi-b"
    out = tmp_path / "run"
    res = run_cli(*args, "-o", str(out), "--max-steps", "1", *TINY_CLI, *extra)
    assert_clean_error(res, expect)
    assert not out.exists()


def test_chip_folders_still_train_as_before(tmp_path: Path, make_raster) -> None:
    for i in range(2):
        make_raster(f"a/c{i}.tif", width=40, height=40, seed=i)
        make_raster(f"b/c{i}.tif", width=40, height=40, seed=10 + i)
    data = open_inputs("cyclegan", tmp_path / "a", tmp_path / "b", 32)
    assert data.layout == "unpaired" and len(data.dataset) == 2
    # rasters from a list file (paths relative to it); a folder in it is refused
    make_raster("x.tif", width=40, height=40)
    make_raster("y.tif", width=50, height=40)
    (tmp_path / "list.txt").write_text("# 2009\nx.tif\n\ny.tif\n")
    data = open_inputs("cyclegan", Path(f"@{tmp_path / 'list.txt'}"), make_raster("z.tif"), 32)
    assert data.layout == "raster_windows"
    assert [p.name for p in data.a.files] == ["x.tif", "y.tif"]
    (tmp_path / "list.txt").write_text("x.tif\na\n")
    with pytest.raises(InputError, match="is a folder, which is read as chips"):
        open_inputs("cyclegan", Path(f"@{tmp_path / 'list.txt'}"), tmp_path / "z.tif", 32)


def test_each_ddp_rank_draws_its_own_windows(make_raster) -> None:
    from geogan.datasets import EpochSampler

    a = make_raster("a.tif", width=90, height=70)
    b = make_raster("b.tif", width=60, height=60, seed=9)
    ds = dataset(a, b, crop=16)
    per_rank = [[ds.windows(seed)[0] for _, seed in EpochSampler(len(ds), 0, rank, 2)]
                for rank in (0, 1)]
    assert len(per_rank[0]) == len(per_rank[1]) == len(ds) // 2
    assert not set(per_rank[0]) & set(per_rank[1])  # no window drawn by both ranks


def test_statistics_come_from_windows_and_ignore_nodata(make_raster) -> None:
    data = np.full((2, 64, 64), 65535, dtype=np.uint16)  # nodata, except a textured block
    rng = np.random.default_rng(0)
    data[:, 8:56, 8:56] = rng.integers(1000, 3000, (2, 48, 48))
    a = make_raster("a.tif", data=data, nodata=65535)
    b = make_raster("b.tif", width=40, height=40, seed=2)
    data_ = open_inputs("cyclegan", a, b, 16, windows=WindowConfig(max_nodata=0.6))
    norm = data_.a.norm
    assert norm.dtype == "uint16" and norm.nodata == 65535
    assert all(1000 <= lo < hi <= 3000 for lo, hi in zip(norm.lo, norm.hi, strict=True))
    assert data_.b.norm.lo == (0.0,) * 3 and data_.b.norm.hi == (255.0,) * 3  # uint8


def test_res_reads_both_domains_on_one_ground_resolution(make_raster) -> None:
    a = make_raster("a.tif", width=120, height=80)  # 5 m pixels
    b = make_raster("b.tif", width=60, height=40, seed=3,
                    transform=from_origin(485900.0, 5209247.0, 10.0, 10.0))  # 10 m pixels
    ds = dataset(a, b, crop=16, res=10.0)
    view_a, view_b = ds.a._views().view(0)[0], ds.b._views().view(0)[0]
    # both on tile's --res grid: 10 m pixels snapped to multiples of 10 m
    assert view_a.transform == view_b.transform and view_a.transform.a == 10.0
    assert view_a.transform.c % 10 == 0 and view_a.transform.f % 10 == 0
    assert ds.a.sources[0].region == ds.b.sources[0].region == (0, 0, 60, 41)
    chip = ds.a.read(ds.windows(0)[0])[0][0]
    assert chip.shape == (3, 16, 16)
