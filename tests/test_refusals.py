"""Nothing reaches a user as "unexpected ...; report it" (#21): training options that would
build huge or shapeless networks, torch's failed allocations, out-of-range or malformed
statistics files, more bands than a checkpoint may hold, and demo errors naming a hidden
folder, through the CLI: exit code, the one error line, and what is on disk afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import cli_error, listing, run_cli

from geogan.checkpoint import read_metadata
from geogan.contract.limits import ARCH_LIMITS, range_text
from geogan.errors import InputError

TINY_TRAIN = ["--crop", "32", "--ngf", "8", "--ndf", "8", "--generator", "resnet_6blocks",
              "--batch-size", "1"]
TILE = ["--tile", "32", "--overlap", "8"]


def _chips(make_raster, tmp_path: Path) -> tuple[Path, Path]:
    for d in ("a", "b"):
        for i in range(2):
            make_raster(f"{d}/c{i}.tif", width=40, height=40, seed=i)
    return tmp_path / "a", tmp_path / "b"


@pytest.mark.parametrize("option, value", [("--ngf", 4096), ("--ngf", 0), ("--ndf", 513)])
def test_train_refuses_network_widths_out_of_range(make_raster, tmp_path, option, value):
    """Before: --ngf 4096 tried to allocate tens of GB ("unexpected RuntimeError")."""
    a, b = _chips(make_raster, tmp_path)
    before = listing(tmp_path)
    args = [*TINY_TRAIN, option, str(value)]
    msg = cli_error(run_cli("train", "--a", a, "--b", b, "-o", tmp_path / "run",
                            "--max-steps", "1", *args))
    assert msg == f"Error: {option} must be from {range_text(option[2:])}, got {value}"
    assert listing(tmp_path) == before


def test_train_refuses_a_crop_too_small_for_the_networks(make_raster, tmp_path):
    """Before: --crop 8 ended in "unexpected ValueError: Expected more than 1 spatial element";
    the minimum the message gives does train."""
    a, b = _chips(make_raster, tmp_path)
    before = listing(tmp_path)
    base = ["train", "--a", a, "--b", b, "--max-steps", "1", *TINY_TRAIN]
    msg = cli_error(run_cli(*base, "-o", tmp_path / "run", "--crop", "8"))
    assert "--crop 8 is too small for generator resnet_6blocks and discriminator patchgan " \
        "(3 layers); use at least 24, a multiple of 4" in msg
    assert listing(tmp_path) == before
    # a layer count given is named as its option
    msg = cli_error(run_cli(*base, "-o", tmp_path / "run", "--crop", "24", "--n-layers", "4"))
    assert "discriminator patchgan with --n-layers 4; use at least 48" in msg
    assert listing(tmp_path) == before
    result = run_cli(*base, "-o", tmp_path / "run", "--crop", "24")
    assert result.exit_code == 0, result.output
    assert read_metadata(tmp_path / "run")["chip_size"] == 24


def test_a_crop_too_small_reads_in_the_qgis_dialog_s_words():
    """QGIS offers `crop` but not `n_layers`: the message names the dialog's crop and says
    the discriminator's (default) layers in words, no CLI flag."""
    from geogan.contract.messages import for_qgis
    from geogan.contract.options import TRAIN
    from geogan.train.config import TrainConfig, validate_config

    config = TrainConfig(a=Path("a"), b=Path("b"), output=Path("o"), crop=8,
                         generator="resnet_6blocks")
    with pytest.raises(InputError) as err:
        validate_config(config)
    shown = for_qgis(err.value.template, "train")
    assert shown == (f"'{TRAIN['crop'].label}' 8 is too small for generator resnet_6blocks and "
                     "discriminator patchgan (3 layers); use at least 24, a multiple of 4")


def test_torch_allocation_failures_say_what_to_lower(make_raster, tmp_path, monkeypatch,
                                                     tiny_checkpoint):
    """torch reports a failed CPU allocation as a RuntimeError, not a MemoryError."""
    import geogan.translate as tr

    def allocate(*args, **kwargs):
        return torch.empty(1 << 45, dtype=torch.uint8)  # 32 TB

    monkeypatch.setattr(tr, "load_generator", allocate)
    src = make_raster("r.tif", width=40, height=30)
    msg = cli_error(run_cli("translate", tiny_checkpoint, src, "-o", tmp_path / "o.tif", *TILE))
    assert msg.startswith("Error: out of memory (32768.0 GB could not be allocated); lower")
    assert "--tile" in msg and "unexpected" not in msg
    assert not (tmp_path / "o.tif").exists()


def _stats_file(make_raster, tmp_path: Path, checkpoint: Path) -> tuple[Path, Path]:
    src = make_raster("r.tif", width=40, height=30)
    assert run_cli("translate", checkpoint, src, "-o", tmp_path / "first.tif", "--save-stats",
                   *TILE).exit_code == 0
    return src, tmp_path / "first.stats.json"


def test_stats_out_of_float32_range_are_blamed_on_the_file(make_raster, tmp_path,
                                                          tiny_checkpoint):
    """Before: the weights were blamed (and --precision fp32 suggested on a bf16 CPU)."""
    src, stats = _stats_file(make_raster, tmp_path, tiny_checkpoint)
    data = json.loads(stats.read_text())
    layer = next(iter(data["layers"]))
    data["layers"][layer]["mean"] = [1e300] * len(data["layers"][layer]["mean"])
    stats.write_text(json.dumps(data))
    before = listing(tmp_path)
    msg = cli_error(run_cli("translate", tiny_checkpoint, src, "-o", tmp_path / "o.tif",
                            "--stats", stats, *TILE))
    assert f"statistics file {stats} holds values out of range (layer {layer}: 1e+300" in msg
    assert "weights" not in msg and "--precision" not in msg and "--save-stats" in msg
    assert listing(tmp_path) == before


def test_deeply_nested_stats_are_malformed_json(make_raster, tmp_path, tiny_checkpoint):
    stats = tmp_path / "deep.stats.json"
    stats.write_text("[" * 100_000 + "]" * 100_000)
    src = make_raster("r.tif", width=40, height=30)
    before = listing(tmp_path)
    msg = cli_error(run_cli("translate", tiny_checkpoint, src, "-o", tmp_path / "o.tif",
                            "--stats", stats, *TILE))
    assert f"statistics file {stats} is malformed JSON (nested too deeply)" in msg
    assert listing(tmp_path) == before


def test_a_demo_error_names_the_output_folder(tmp_path):
    """Before: "checkpoint .../.demo.1234.abcd.tmp/model.safetensors is truncated"."""
    from geogan.demo import PRETRAINED_NAME, REFERENCE_NAME, SOURCE_NAME, default_data_dir

    data = tmp_path / "data"
    (data / PRETRAINED_NAME).parent.mkdir(parents=True)
    for name in (SOURCE_NAME, REFERENCE_NAME):
        (data / name).symlink_to(default_data_dir() / name)
    model = default_data_dir() / PRETRAINED_NAME
    (data / PRETRAINED_NAME).write_bytes(model.read_bytes()[:4000])  # a torn download
    (data / PRETRAINED_NAME).with_suffix(".json").write_bytes(
        model.with_suffix(".json").read_bytes())
    before = listing(tmp_path)
    msg = cli_error(run_cli("demo", "--pretrained", "--data", data, "-o", tmp_path / "demo"))
    assert f"checkpoint {tmp_path / 'demo' / 'model.safetensors'} is truncated" in msg
    assert ".tmp" not in msg
    assert listing(tmp_path) == before


def test_train_refuses_more_bands_than_a_checkpoint_may_hold(make_raster, tmp_path,
                                                              monkeypatch):
    """Translation refuses checkpoints of more bands (geogan.contract.limits): so does training,
    also where the limit on a raster's declared bands (geogan.limits) is raised."""
    monkeypatch.setenv("GEOGAN_MAX_BANDS", "4096")
    high = ARCH_LIMITS["in_channels"][1]
    for d in ("a", "b"):
        for i in range(2):
            make_raster(f"{d}/c{i}.tif", width=32, height=32, seed=i,
                        count=high + 1 if d == "a" else 3)
    before = listing(tmp_path)
    msg = cli_error(run_cli("train", "--a", tmp_path / "a", "--b", tmp_path / "b", "-o",
                            tmp_path / "run", "--max-steps", "1", *TINY_TRAIN))
    assert f"--a has {high + 1} bands; geogan's networks take 1 to {high}" in msg
    assert listing(tmp_path) == before
