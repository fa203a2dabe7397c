"""Two-process DistributedDataParallel training on the CPU (gloo), launched by torchrun."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from geogan.checkpoint import read_metadata


def test_torchrun_two_processes_write_one_checkpoint(tmp_path: Path, make_raster) -> None:
    for i in range(4):
        make_raster(f"a/c{i}.tif", width=40, height=40, seed=i)
        make_raster(f"b/c{i}.tif", width=40, height=40, count=3, seed=20 + i)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "geogan", "--progress", "none", "train", "--a", str(tmp_path / "a"),
           "--b", str(tmp_path / "b"), "-o", str(out), "--device", "cpu", "--crop", "32",
           "--ngf", "8", "--ndf", "8", "--generator", "resnet_6blocks", "--batch-size", "1",
           "--epochs", "2", "--log-every", "1", "--save-every", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    except subprocess.TimeoutExpired:  # pragma: no cover - a hang is a failure
        pytest.fail("torchrun training did not finish within 240 s")
    assert proc.returncode == 0, proc.stderr[-3000:]
    # 4 samples / 2 processes / batch 1 = 2 steps per epoch, 2 epochs
    meta = read_metadata(out)
    assert meta["step"] == 4 and meta["epoch"] == 2
    assert meta["training"]["world_size"] == 2
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".safetensors") == [
        "model.safetensors", "train_state.safetensors"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
    with open(out / "losses.csv", newline="") as fh:
        steps = [int(r["step"]) for r in csv.DictReader(fh)]
    assert steps == [1, 2, 3, 4]  # written by rank 0 only: no duplicate rows
    assert proc.stdout.count("Model written to") == 1


@pytest.mark.parametrize("model", ["cut", "fastcut"])
def test_torchrun_trains_cut_with_every_weight_in_the_reduction(tmp_path: Path, make_raster,
                                                                model: str) -> None:
    """DDP fails at the second step if a weight of G or the patch head got no gradient."""
    for i in range(4):
        make_raster(f"a/c{i}.tif", width=40, height=40, seed=i)
        make_raster(f"b/c{i}.tif", width=40, height=40, count=3, seed=20 + i)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "geogan", "--progress", "none", "train", "--model", model,
           "--upsample", "resize", "--a", str(tmp_path / "a"), "--b", str(tmp_path / "b"),
           "-o", str(out), "--device", "cpu", "--crop", "32", "--ngf", "8", "--ndf", "8",
           "--generator", "resnet_6blocks", "--batch-size", "1", "--max-steps", "3",
           "--nce-patches", "32", "--log-every", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    except subprocess.TimeoutExpired:  # pragma: no cover - a hang is a failure
        pytest.fail("torchrun training did not finish within 240 s")
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = read_metadata(out)
    assert meta["step"] == 3 and meta["training"]["world_size"] == 2
    assert meta["model"] == model and list(meta["generators"]) == ["a2b"]
    with open(out / "losses.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert all(float(r["NCE"]) > 0 for r in rows)
