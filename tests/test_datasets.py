"""Training data layouts, checks, normalisation, augmentation and the epoch sampler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image

from geogan.datasets import (
    AugmentParams,
    EpochSampler,
    apply_augment,
    open_training_data,
    read_image,
    steps_per_epoch,
)
from geogan.errors import InputError


def _chips(make_raster, folder: str, n: int, **kw) -> Path:
    for i in range(n):
        path = make_raster(f"{folder}/c{i}.tif", seed=kw.pop("seed", 0) + i, **kw)
    return path.parent


def test_unpaired_geotiff_chips(tmp_path: Path, make_raster) -> None:
    a = _chips(make_raster, "a", 3, width=40, height=40, count=4, nodata=0)
    b = _chips(make_raster, "b", 5, width=40, height=40, count=3)
    data = open_training_data("cyclegan", a, b, 32)
    assert data.layout == "unpaired" and len(data.dataset) == 5
    assert (data.a.bands, data.b.bands, data.a.nodata) == (4, 3, 0)
    s = data.dataset[(1, 123)]
    assert s["A"].shape == (4, 32, 32) and s["B"].shape == (3, 32, 32)
    assert np.array_equal(data.dataset[(1, 123)]["B"], s["B"])  # the seed decides everything
    # A is a 32 px crop of c1.tif (sample 1 of 3) under one of the square's 8 symmetries,
    # its full uint8 range 0..255 scaled to -1..1
    assert s["A"].dtype.is_floating_point
    values = (s["A"].numpy().astype(np.float64) + 1) * 127.5
    pixels = np.rint(values).astype(np.uint8)
    np.testing.assert_allclose(values, pixels, atol=1e-3)
    with rasterio.open(a / "c1.tif") as src:
        raw = src.read()
    crops = (raw[:, y:y + 32, x:x + 32] for y in range(9) for x in range(9))
    assert any(np.array_equal(pixels, np.rot90(c[:, :, ::flip], k, axes=(1, 2)))
               for c in crops for flip in (1, -1) for k in range(4))


def test_float_chips_get_robust_statistics_ignoring_nodata(tmp_path: Path, make_raster) -> None:
    a = _chips(make_raster, "dsm", 3, width=40, height=40, count=1, dtype="float32",
               nodata=-9999.0, nodata_box=(0, 10, 0, 40))
    b = _chips(make_raster, "b", 2, width=40, height=40, count=1, dtype="uint16")
    data = open_training_data("cyclegan", a, b, 32)
    assert data.a.norm.dtype == "float32" and data.a.norm.lo[0] > -100  # -9999 ignored
    assert data.b.norm.dtype == "uint16" and data.b.norm.hi[0] < 65535


def test_paired_chips_of_tile_pair(tmp_path: Path, make_raster) -> None:
    rng = np.random.default_rng(0)
    for i in range(3):
        arr = rng.integers(1, 255, (3, 40, 40), dtype=np.uint8)
        make_raster(f"pairs/A/x{i}.tif", data=arr)
        make_raster(f"pairs/B/x{i}.tif", data=arr)  # identical: A and B must stay aligned
    for data in (open_training_data("pix2pix", tmp_path / "pairs", None, 32),
                 open_training_data("pix2pix", tmp_path / "pairs/A", tmp_path / "pairs/B", 32)):
        assert data.layout == "paired"
        for seed in range(8):
            s = data.dataset[(seed % 3, seed)]
            assert np.array_equal(s["A"], s["B"])  # same crop, flips and rotation


def test_unmatched_pairs_are_named(tmp_path: Path, make_raster) -> None:
    _chips(make_raster, "p/A", 2, width=40, height=40)
    make_raster("p/B/c0.tif", width=40, height=40)
    with pytest.raises(InputError, match=r"1 chips in .*A have no partner .*c1.tif"):
        open_training_data("pix2pix", tmp_path / "p", None, 32)


def test_png_folders_and_side_by_side_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for dom, mode in (("trainA", "RGB"), ("trainB", "L")):
        (tmp_path / dom).mkdir()
        for i in range(2):
            shape = (36, 36, 3) if mode == "RGB" else (36, 36)
            Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(
                tmp_path / dom / f"{i}.png")
    data = open_training_data("cyclegan", tmp_path / "trainA", tmp_path / "trainB", 32)
    assert (data.a.bands, data.b.bands) == (3, 1)
    with pytest.raises(InputError, match="trainA/ and trainB/"):
        open_training_data("cyclegan", tmp_path, tmp_path / "trainB", 32)

    sbs = tmp_path / "maps"
    sbs.mkdir()
    left = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
    Image.fromarray(np.concatenate([left, left // 2], axis=1)).save(sbs / "1.png")
    data = open_training_data("pix2pix", sbs, None, 32, augment=False)
    assert data.layout == "side_by_side"
    s = data.dataset[(0, 0)]
    a = (s["A"].numpy() + 1) * 127.5
    b = (s["B"].numpy() + 1) * 127.5
    np.testing.assert_allclose(b, np.floor(np.rint(a) / 2), atol=0.01)


def test_augmentation_is_a_crop_then_a_square_symmetry() -> None:
    arr = np.arange(2 * 6 * 6).reshape(2, 6, 6)
    crop = arr[:, 1:5, 2:6]
    out = apply_augment(arr, AugmentParams(1, 2, True, False, 1), 4)
    assert np.array_equal(out, np.rot90(crop[:, :, ::-1], 1, axes=(1, 2)))
    # all 8 flips/rotations of the crop are reachable and nothing else
    from geogan.datasets import draw_augment

    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        p = draw_augment(rng, 6, 6, 4, True)
        assert 0 <= p.y <= 2 and 0 <= p.x <= 2
        seen.add((p.flip_h, p.flip_v, p.rot90))
    assert len(seen) == 16  # 2 x 2 x 4 draws (covering the 8 distinct symmetries)


def test_epoch_sampler_resumes_and_splits_ranks() -> None:
    full = EpochSampler(10, seed=3)
    full.set_epoch(2)
    order = list(full)
    assert sorted(i for i, _ in order) == list(range(10))
    again = EpochSampler(10, seed=3)
    again.set_epoch(2, start=4)
    assert list(again) == order[4:]
    other_epoch = EpochSampler(10, seed=3)
    other_epoch.set_epoch(3)
    assert [i for i, _ in other_epoch] != [i for i, _ in order]
    ranks = [EpochSampler(11, seed=3, rank=r, world_size=2) for r in (0, 1)]
    items = [list(s) for s in ranks]
    assert len(items[0]) == len(items[1]) == 5
    assert not {i for i, _ in items[0]} & {i for i, _ in items[1]}
    assert not {s for _, s in items[0]} & {s for _, s in items[1]}
    assert steps_per_epoch(11, 2, 2) == 2


def test_unreadable_chip_is_named(tmp_path: Path, make_raster) -> None:
    a = _chips(make_raster, "a", 2, width=40, height=40)
    b = _chips(make_raster, "b", 2, width=40, height=40)
    bad = b / "c1.tif"
    bad.write_bytes(bad.read_bytes()[:300])
    with pytest.raises(InputError, match="c1.tif"):
        open_training_data("cyclegan", a, b, 32)
    with pytest.raises(InputError, match="unreadable"):
        read_image(tmp_path / "missing.png")


def test_a_data_set_root_trains_on_its_train_split(tmp_path: Path, caplog) -> None:
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("val", 2)):
        (tmp_path / "maps" / split).mkdir(parents=True)
        for i in range(n):
            left = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
            Image.fromarray(np.concatenate([left, left // 2], axis=1)).save(
                tmp_path / "maps" / split / f"{i}.png")
    data = open_training_data("pix2pix", tmp_path / "maps", None, 32, augment=False)
    assert len(data.dataset) == 3  # train/ only, val/ is left out
    assert "training on" in caplog.text and "train" in caplog.text


def _pixels(sample) -> np.ndarray:
    """A uint8 sample back in 0..255 (full-range normalisation), exactly."""
    values = (sample.numpy().astype(np.float64) + 1) * 127.5
    pixels = np.rint(values)
    np.testing.assert_allclose(values, pixels, atol=1e-3)
    return pixels.astype(np.uint8)


def _save(path: Path, arr: np.ndarray, mode: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path)


@pytest.mark.parametrize("cache_mb", [1024, 0])  # from the memory cache and read on the fly
def test_mixed_pictures_take_the_folders_majority_layout(tmp_path: Path, caplog,
                                                         cache_mb: int) -> None:
    import logging

    rng = np.random.default_rng(1)
    rgb = {i: rng.integers(0, 256, (36, 36, 3), dtype=np.uint8) for i in range(3)}
    gray = rng.integers(0, 256, (36, 36), dtype=np.uint8)
    rgba = rng.integers(0, 256, (36, 36, 4), dtype=np.uint8)
    for i, arr in rgb.items():
        _save(tmp_path / "a" / f"c{i}.png", arr, "RGB")
    _save(tmp_path / "a" / "c3.png", gray, "L")
    _save(tmp_path / "a" / "c4.png", rgba, "RGBA")
    for i in range(3):  # mostly grayscale: an RGB picture goes to gray by luminance
        _save(tmp_path / "b" / f"g{i}.png", rng.integers(0, 256, (36, 36), dtype=np.uint8), "L")
    _save(tmp_path / "b" / "g3.png", rgb[0], "RGB")
    with caplog.at_level(logging.INFO, logger="geogan"):
        data = open_training_data("cyclegan", tmp_path / "a",
                                  tmp_path / "b", 32, augment=False, cache_mb=cache_mb)
    assert (data.a.bands, data.b.bands) == (3, 1)
    assert "converted 2 of 5 pictures of `a` to RGB (1 grayscale, 1 RGBA)" in caplog.text
    assert "converted 1 of 4 pictures of `b` to grayscale (1 RGB)" in caplog.text
    centre = (slice(2, 34), slice(2, 34))
    a_gray = _pixels(data.dataset[(3, 0)]["A"])  # centre crop of c3.png, its band repeated
    assert a_gray.shape == (3, 32, 32)
    assert all(np.array_equal(band, gray[centre]) for band in a_gray)
    a_rgba = _pixels(data.dataset[(4, 0)]["A"])  # alpha dropped, the colours kept
    assert np.array_equal(a_rgba, rgba[centre].transpose(2, 0, 1)[:3])
    assert np.array_equal(_pixels(data.dataset[(0, 0)]["A"]), rgb[0][centre].transpose(2, 0, 1))
    luminance = np.asarray(Image.fromarray(rgb[0], "RGB").convert("L"))
    assert np.array_equal(read_image(tmp_path / "b" / "g3.png", 1)[0], luminance)  # as PIL
    assert data.b.files[3].name == "g3.png"
    _, previews_b = data.dataset.preview_batch(4)  # the centre of each of the 4 B pictures
    assert previews_b.shape == (4, 1, 32, 32)
    assert np.array_equal(_pixels(previews_b[3])[0], luminance[centre])


def test_geotiff_chips_of_other_band_counts_stay_an_error(tmp_path: Path, make_raster) -> None:
    a = _chips(make_raster, "a", 3, width=40, height=40)
    make_raster("a/c9.tif", width=40, height=40, count=1)
    b = _chips(make_raster, "b", 2, width=40, height=40)
    with pytest.raises(InputError, match="c9.tif has 1 bands"):
        open_training_data("cyclegan", a, b, 32)


def _scene(make_raster, root: str, names: list[str], seed: int) -> None:
    """A 'geogan tile --pair' output: A/ and B/ chips, B = 255 - A, new pixels per pair."""
    rng = np.random.default_rng(seed)
    for name in names:
        arr = rng.integers(0, 256, (3, 36, 36), dtype=np.uint8)
        make_raster(f"{root}/A/{name}.tif", data=arr)
        make_raster(f"{root}/B/{name}.tif", data=255 - arr)


def _assert_pairs(data, n: int) -> None:
    """Every sample's B is 255 - its A (same crop and symmetry), and all A differ."""
    assert data.layout == "paired" and len(data.dataset) == n
    seen = []
    for k in range(n):
        s = data.dataset[(k, 10 + k)]
        a, b = _pixels(s["A"]), _pixels(s["B"])
        assert np.array_equal(b, 255 - a), k
        seen.append(a.tobytes())
    assert len(set(seen)) == n


def test_pix2pix_reads_a_folder_of_tile_pair_outputs(tmp_path: Path, make_raster) -> None:
    _scene(make_raster, "scenes/s1", ["c0", "c1"], seed=1)  # the same names in both scenes
    _scene(make_raster, "scenes/s2", ["c0", "c1", "c2"], seed=2)
    data = open_training_data("pix2pix", tmp_path / "scenes", None, 32)
    _assert_pairs(data, 5)
    assert [p.relative_to(tmp_path).as_posix() for p in data.b.files][:3] == \
        ["scenes/s1/B/c0.tif", "scenes/s1/B/c1.tif", "scenes/s2/B/c0.tif"]
    assert (data.a.name, data.b.name, data.a.folder) == ("A", "B", tmp_path / "scenes")
    # several folders: each a tile --pair output, or A and B folders given in order
    s1, s2 = tmp_path / "scenes/s1", tmp_path / "scenes/s2"
    _assert_pairs(open_training_data("pix2pix", [s1, s2], None, 32), 5)
    _assert_pairs(open_training_data("pix2pix", [s2 / "A", s1 / "A"], [s2 / "B", s1 / "B"],
                                     32), 5)
    with pytest.raises(InputError, match="--a gives 2 chip folders and --b 1"):
        open_training_data("pix2pix", [s1 / "A", s2 / "A"], [s1 / "B"], 32)
    # an image outside the scenes, or scene folders given to CycleGAN, are refused
    with pytest.raises(InputError, match="holds scene folders with A/ and B/ pairs"):
        open_training_data("cyclegan", tmp_path / "scenes", s1 / "B", 32)
    make_raster("scenes/stray.tif", width=36, height=36)
    with pytest.raises(InputError, match=r"2 scene folders .* 1 images outside them .*stray"):
        open_training_data("pix2pix", tmp_path / "scenes", None, 32)


def test_pix2pix_btoa_swaps_the_roles(tmp_path: Path, make_raster) -> None:
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 256, (3, 36, 36), dtype=np.uint8)
    make_raster("pairs/A/c0.tif", data=arr)
    make_raster("pairs/B/c0.tif", data=arr[:1] // 2)  # one band: B's chips become domain A
    centre = arr[:, 2:34, 2:34]
    for given in ((tmp_path / "pairs", None), (tmp_path / "pairs/A", tmp_path / "pairs/B")):
        data = open_training_data("pix2pix", *given, 32, augment=False, direction="BtoA")
        assert (data.a.name, data.a.bands, data.b.name, data.b.bands) == ("B", 1, "A", 3)
        assert data.a.files == (tmp_path / "pairs/B/c0.tif",)
        s = data.dataset[(0, 0)]
        assert np.array_equal(_pixels(s["A"]), centre[:1] // 2)
        assert np.array_equal(_pixels(s["B"]), centre)

    sbs = tmp_path / "maps"
    sbs.mkdir()
    left = rng.integers(0, 256, (36, 36, 3), dtype=np.uint8)
    Image.fromarray(np.concatenate([left, left // 2], axis=1)).save(sbs / "1.png")
    data = open_training_data("pix2pix", sbs, None, 32, augment=False, direction="BtoA")
    assert (data.a.name, data.b.name) == ("maps right", "maps left")
    s = data.dataset[(0, 0)]
    centre = left[2:34, 2:34].transpose(2, 0, 1)
    assert np.array_equal(_pixels(s["A"]), centre // 2)  # the right half is the input
    assert np.array_equal(_pixels(s["B"]), centre)
    preview_a, preview_b = data.dataset.preview_batch(1)
    assert np.array_equal(_pixels(preview_a[0]), centre // 2)
    with pytest.raises(InputError, match="--direction BtoA needs paired data"):
        open_training_data("cyclegan", tmp_path / "pairs/A", tmp_path / "pairs/B", 32,
                           direction="BtoA")
