"""``geogan train`` through click: a real run, resume, and each bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import cli_error

from geogan.checkpoint import read_metadata
from geogan.cli import main

torch.set_num_threads(1)

TINY = ["--crop", "32", "--ngf", "8", "--ndf", "8", "--generator", "resnet_6blocks"]


def run_cli(*args: str) -> object:
    return CliRunner().invoke(main, ["--progress", "none", "train", *args])


def chips(make_raster, folder: str, n: int = 2, **kw) -> Path:
    seed = kw.pop("seed", 0)
    for i in range(n):
        path = make_raster(f"{folder}/c{i}.tif", **{"width": 40, "height": 40, "seed": seed + i,
                                                    **kw})
    return path.parent


def assert_clean_error(result, *fragments: str) -> None:
    error = cli_error(result)
    for frag in fragments:
        assert frag in error, result.output


def test_cli_trains_and_resumes(tmp_path: Path, make_raster) -> None:
    a, b = chips(make_raster, "a", count=4, nodata=0), chips(make_raster, "b", seed=7)
    out = tmp_path / "run"
    res = run_cli("--a", str(a), "--b", str(b), "-o", str(out), "--max-steps", "2",
                  "--log-every", "1", *TINY)
    assert res.exit_code == 0, res.output
    assert "Model written to" in res.output and str(out / "model.safetensors") in res.output
    meta = read_metadata(out)
    assert meta["step"] == 2 and meta["generators"]["a2b"]["kwargs"]["ngf"] == 8
    # resume needs no settings again; a longer --max-steps continues the count
    res = run_cli("-o", str(out), "--resume", "--max-steps", "3")
    assert res.exit_code == 0, res.output
    assert read_metadata(out)["step"] == 3
    res = run_cli("-o", str(out), "--resume", "--ngf", "16")
    assert_clean_error(res, "--ngf 16 differs")
    res = run_cli("--a", str(a), "--b", str(b), "-o", str(out), "--max-steps", "1", *TINY)
    assert_clean_error(res, "--overwrite")


@pytest.mark.parametrize("case", ["missing", "empty", "bands", "dtype", "small", "unreadable",
                                  "no_b", "crop_vs_unet"])
def test_cli_bad_input_fails_cleanly(case: str, tmp_path: Path, make_raster) -> None:
    a = chips(make_raster, "a")
    b = chips(make_raster, "b", seed=5)
    expect = {"missing": "does not exist", "empty": "holds no .tif", "bands": "bands",
              "dtype": "one dtype", "small": "smaller than --crop 32",
              "unreadable": "c1.tif is truncated", "no_b": "two folders",
              "crop_vs_unet": "multiple of 256"}[case]
    args = ["--a", str(a), "--b", str(b)]
    extra: list[str] = []
    if case == "missing":
        args = ["--a", str(a), "--b", str(tmp_path / "nope")]
    elif case == "empty":
        (tmp_path / "empty").mkdir()
        args = ["--a", str(tmp_path / "empty"), "--b", str(b)]
    elif case == "bands":
        make_raster("b/c9.tif", width=40, height=40, count=4)
    elif case == "dtype":
        make_raster("b/c9.tif", width=40, height=40, dtype="uint16")
    elif case == "small":
        make_raster("a/c9.tif", width=30, height=40)
    elif case == "unreadable":
        bad = a / "c1.tif"
        bad.write_bytes(bad.read_bytes()[:400])
    elif case == "no_b":
        args = ["--a", str(a)]
    elif case == "crop_vs_unet":
        extra = ["--model", "pix2pix", "--generator", "unet_256"]
        args = ["--a", str(a), "--b", str(a)]
    out = tmp_path / "run"
    opts = [*TINY, *extra] if case != "crop_vs_unet" else ["--crop", "32", *extra]
    res = run_cli(*args, "-o", str(out), "--max-steps", "1", *opts)
    assert_clean_error(res, expect)
    assert not out.exists()  # no run folder left half made


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cli_cuda_without_gpu(tmp_path: Path, make_raster) -> None:
    a, b = chips(make_raster, "a"), chips(make_raster, "b", seed=3)
    out = tmp_path / "run"
    res = run_cli("--a", str(a), "--b", str(b), "-o", str(out), "--device", "cuda", *TINY)
    assert_clean_error(res, "--device cuda", "no CUDA GPU")
    res = run_cli("--a", str(a), "--b", str(b), "-o", str(out), "--precision", "fp16", *TINY)
    assert_clean_error(res, "fp16 needs a CUDA GPU")
    assert not out.exists()


def test_cli_choices_come_from_the_registries() -> None:
    from geogan.cli.train import command
    from geogan.models import DISCRIMINATORS, GENERATORS
    from geogan.models.gan import GAN_MODELS

    params = {p.name: p for p in command.params}
    assert list(params["model"].type.choices) == list(GAN_MODELS)
    assert list(params["generator"].type.choices) == list(GENERATORS)
    assert list(params["discriminator"].type.choices) == list(DISCRIMINATORS)
    res = run_cli("--generator", "resnet_99blocks", "-o", "x")
    assert res.exit_code == 2 and "resnet_9blocks" in res.output


def test_cli_module_imports_without_torch() -> None:
    code = ("import sys, geogan.cli.train; from geogan.cli import main; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_training_code_imports_without_geopandas() -> None:
    code = ("import sys; sys.modules['geopandas'] = None; import geogan.train, "
            "geogan.checkpoint, geogan.datasets")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_trains_cut_with_resize_upsampling(tmp_path: Path, make_raster) -> None:
    from geogan.cli.train import command
    from geogan.contract.choices import UPSAMPLES
    from geogan.models import DEFAULT_UPSAMPLE

    params = {p.name: p for p in command.params}
    assert list(params["upsample"].type.choices) == list(UPSAMPLES)
    assert params["upsample"].default == DEFAULT_UPSAMPLE == "resize"
    a, b = chips(make_raster, "a"), chips(make_raster, "b", seed=7)
    out = tmp_path / "run"
    res = run_cli("--model", "cut", "--upsample", "resize", "--lambda-nce", "2",
                  "--nce-patches", "32", "--a", str(a), "--b", str(b), "-o", str(out),
                  "--max-steps", "2", *TINY)
    assert res.exit_code == 0, res.output
    meta = read_metadata(out)
    assert meta["model"] == "cut" and list(meta["generators"]) == ["a2b"]
    assert meta["generators"]["a2b"]["kwargs"]["upsample"] == "resize"
    res = run_cli("-o", str(out), "--resume", "--lambda-nce", "5")
    assert_clean_error(res, "--lambda-nce 5.0 differs")
    res = run_cli("--model", "cut", "--a", str(a), "-o", str(tmp_path / "x"), *TINY)
    assert_clean_error(res, "--b")
    res = run_cli("--upsample", "nearest", "-o", "x")
    assert res.exit_code == 2 and "deconv" in res.output


def _pairs(make_raster, root: str, names: tuple[str, ...] = ("c0", "c1"), bands_b: int = 3,
           seed: int = 0) -> Path:
    """A 'geogan tile --pair' output: root/A and root/B chips of equal names."""
    for i, name in enumerate(names):
        make_raster(f"{root}/A/{name}.tif", width=40, height=40, seed=seed + i)
        path = make_raster(f"{root}/B/{name}.tif", width=40, height=40, count=bands_b,
                           seed=seed + 50 + i)
    return path.parents[1]


def test_cli_pix2pix_direction_btoa(tmp_path: Path, make_raster) -> None:
    pairs = _pairs(make_raster, "pairs", bands_b=1)  # A 3 bands, B 1 band: roles tell apart
    out = tmp_path / "run"
    res = run_cli("--model", "pix2pix", "--direction", "BtoA", "--a", str(pairs), "-o",
                  str(out), "--max-steps", "2", *TINY)
    assert res.exit_code == 0, res.output
    meta = read_metadata(out)
    assert meta["training"]["direction"] == "BtoA"
    kwargs = meta["generators"]["a2b"]["kwargs"]
    assert (kwargs["in_channels"], kwargs["out_channels"]) == (1, 3)  # B -> A
    assert (meta["domains"]["a"]["name"], meta["domains"]["b"]["name"]) == ("B", "A")
    # resuming keeps the direction (the stored statistics fit the swapped domains only)
    res = run_cli("-o", str(out), "--resume", "--max-steps", "3")
    assert res.exit_code == 0, res.output
    meta = read_metadata(out)
    assert (meta["step"], meta["training"]["direction"]) == (3, "BtoA")
    forward = tmp_path / "fwd"
    res = run_cli("--model", "pix2pix", "--a", str(pairs / "A"), "--b", str(pairs / "B"),
                  "-o", str(forward), "--max-steps", "1", *TINY)
    assert res.exit_code == 0, res.output
    meta = read_metadata(forward)
    assert meta["training"]["direction"] == "AtoB"
    assert meta["generators"]["a2b"]["kwargs"]["in_channels"] == 3
    res = run_cli("-o", str(forward), "--resume", "--direction", "BtoA")
    assert_clean_error(res, "--direction BtoA differs from the run's AtoB")


def test_cli_pix2pix_direction_btoa_from_rasters(tmp_path: Path, make_raster) -> None:
    a = make_raster("ra/y2009.tif", width=64, height=64, seed=1)  # 3 bands
    b = make_raster("rb/y2020.tif", width=64, height=64, count=1, seed=2)  # same grid
    out = tmp_path / "run"
    res = run_cli("--model", "pix2pix", "--direction", "BtoA", "--a", str(a), "--b", str(b),
                  "-o", str(out), "--max-steps", "2", *TINY)
    assert res.exit_code == 0, res.output
    meta = read_metadata(out)
    assert meta["training"]["direction"] == "BtoA"
    kwargs = meta["generators"]["a2b"]["kwargs"]
    assert (kwargs["in_channels"], kwargs["out_channels"]) == (1, 3)  # the b raster -> a's look
    assert (meta["domains"]["a"]["name"], meta["domains"]["b"]["name"]) == ("y2020", "y2009")
    res = run_cli("--model", "pix2pix", "--direction", "BtoA", "--a", str(a), "-o",
                  str(tmp_path / "alone"), "--max-steps", "1", *TINY)
    assert_clean_error(res, "pix2pix needs rasters of both domains: pass --b as well")
    assert not (tmp_path / "alone").exists()


@pytest.mark.parametrize("case", ["cyclegan", "cut"])
def test_cli_direction_btoa_is_refused_where_it_cannot_apply(case: str, tmp_path: Path,
                                                             make_raster) -> None:
    a, b = chips(make_raster, "a"), chips(make_raster, "b", seed=5)
    args = ["--model", case, "--a", str(a), "--b", str(b)]
    expect = (f"--direction BtoA needs a paired model (--model pix2pix or pix2pixhd); to "
              f"train {case}")
    out = tmp_path / "run"
    res = run_cli(*args, "--direction", "BtoA", "-o", str(out), "--max-steps", "1", *TINY)
    assert_clean_error(res, expect)
    assert not out.exists()


def test_cli_trains_on_mixed_gray_rgb_rgba_pictures(tmp_path: Path, caplog) -> None:
    import logging

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for folder, modes in (("trainA", ["RGB", "RGB", "L", "RGBA"]), ("trainB", ["L", "L", "RGB"])):
        (tmp_path / folder).mkdir()
        for i, mode in enumerate(modes):
            shape = (36, 36) if mode == "L" else (36, 36, len(mode))
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(
                tmp_path / folder / f"{i}.png")
    out = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="geogan"):
        res = CliRunner().invoke(main, ["-v", "--progress", "none", "train", "--a",
                                        str(tmp_path / "trainA"), "--b",
                                        str(tmp_path / "trainB"), "-o", str(out),
                                        "--max-steps", "1", *TINY])
    assert res.exit_code == 0, res.output
    meta = read_metadata(out)
    assert (meta["domains"]["a"]["bands"], meta["domains"]["b"]["bands"]) == (3, 1)
    assert "converted 2 of 4 pictures of `a` to RGB (1 grayscale, 1 RGBA)" in caplog.text
    assert "converted 1 of 3 pictures of `b` to grayscale (1 RGB)" in caplog.text


def test_cli_pix2pix_trains_on_several_tile_pair_outputs(tmp_path: Path, make_raster,
                                                         caplog) -> None:
    import logging

    s1 = _pairs(make_raster, "scenes/s1", ("c0", "c1"))  # the same chip names in each scene
    s2 = _pairs(make_raster, "scenes/s2", ("c0", "c1", "c2"), seed=20)
    runs = {"root": ["--a", str(tmp_path / "scenes")],
            "folders": ["--a", str(s1), str(s2)],
            "a_and_b": ["--a", str(s1 / "A"), str(s2 / "A"), "--b", str(s1 / "B"),
                        str(s2 / "B")]}
    for name, args in runs.items():
        caplog.clear()
        out = tmp_path / f"run_{name}"
        with caplog.at_level(logging.INFO, logger="geogan"):
            res = CliRunner().invoke(main, ["-v", "--progress", "none", "train", "--model",
                                            "pix2pix", *args, "-o", str(out), "--max-steps",
                                            "1", *TINY])
        assert res.exit_code == 0, (name, res.output)
        assert "training data: 5 chips of A (3 bands uint8), 5 of B" in caplog.text, name
        assert "paired" in caplog.text and "side_by_side" not in caplog.text, name
        assert read_metadata(out)["training"]["layout"] == "paired"
