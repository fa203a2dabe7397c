"""Two-process DistributedDataParallel training on the CPU (gloo), launched by torchrun."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_torchrun

from geogan.checkpoint import read_metadata


def _four_chips_each(make_raster) -> None:
    """a/c0..c3.tif and b/c0..c3.tif, 40 x 40 px, three bands."""
    for i in range(4):
        make_raster(f"a/c{i}.tif", width=40, height=40, seed=i)
        make_raster(f"b/c{i}.tif", width=40, height=40, count=3, seed=20 + i)


def test_torchrun_two_processes_write_one_checkpoint(tmp_path: Path, make_raster) -> None:
    _four_chips_each(make_raster)
    out = tmp_path / "run"
    proc = run_torchrun("train", "--a", tmp_path / "a", "--b", tmp_path / "b", "-o", out,
                        "--device", "cpu", "--crop", "32", "--ngf", "8", "--ndf", "8",
                        "--generator", "resnet_6blocks", "--batch-size", "1", "--epochs", "2",
                        "--log-every", "1", "--save-every", "1")
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
    _four_chips_each(make_raster)
    out = tmp_path / "run"
    run_torchrun("train", "--model", model, "--upsample", "resize", "--a", tmp_path / "a",
                 "--b", tmp_path / "b", "-o", out, "--device", "cpu", "--crop", "32", "--ngf",
                 "8", "--ndf", "8", "--generator", "resnet_6blocks", "--batch-size", "1",
                 "--max-steps", "3", "--nce-patches", "32", "--log-every", "1")
    meta = read_metadata(out)
    assert meta["step"] == 3 and meta["training"]["world_size"] == 2
    assert meta["model"] == model and list(meta["generators"]) == ["a2b"]
    with open(out / "losses.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert all(float(r["NCE"]) > 0 for r in rows)


# --------------------------------------------------------------------------- the launch environment


@pytest.mark.parametrize(("env", "expected"), [
    ({}, (0, 1, 0)),
    ({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}, (0, 1, 0)),
    ({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}, (3, 4, 1)),
    ({"RANK": " 1 ", "WORLD_SIZE": "2"}, (1, 2, 0)),
    ({"RANK": "", "WORLD_SIZE": "", "LOCAL_RANK": ""}, (0, 1, 0)),
])
def test_launch_env_reads_torchrun_variables(env: dict[str, str],
                                             expected: tuple[int, int, int]) -> None:
    from geogan.devices import launch_env

    got = launch_env(env)
    assert (got.rank, got.world_size, got.local_rank) == expected
    assert got.enabled == (expected[1] > 1) and got.is_main == (expected[0] == 0)


@pytest.mark.parametrize(("env", "message"), [
    ({"RANK": "x", "WORLD_SIZE": "2"}, "RANK='x' is not an integer"),
    ({"WORLD_SIZE": "2.5"}, "WORLD_SIZE='2.5' is not an integer"),
    ({"LOCAL_RANK": "gpu0"}, "LOCAL_RANK='gpu0' is not an integer"),
    ({"RANK": "2", "WORLD_SIZE": "2"}, "RANK=2 does not fit WORLD_SIZE=2"),
    ({"RANK": "5", "WORLD_SIZE": "2"}, "RANK=5 does not fit WORLD_SIZE=2"),
    ({"RANK": "1"}, "RANK=1 does not fit WORLD_SIZE=1"),
    ({"RANK": "-1", "WORLD_SIZE": "2"}, "RANK=-1 does not fit WORLD_SIZE=2"),
    ({"WORLD_SIZE": "0"}, "RANK=0 does not fit WORLD_SIZE=0"),
    ({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "2"}, "LOCAL_RANK=2 does not fit "
                                                           "WORLD_SIZE=2"),
    ({"LOCAL_RANK": "-1"}, "LOCAL_RANK=-1 does not fit WORLD_SIZE=1"),
])
def test_launch_env_refuses_bad_values_in_one_line(env: dict[str, str], message: str) -> None:
    from geogan.devices import launch_env
    from geogan.errors import InputError

    with pytest.raises(InputError) as caught:
        launch_env(env)
    text = str(caught.value)
    assert text.startswith(message) and "\n" not in text and "launch with torchrun" in text


def test_translate_training_and_the_cli_share_the_launch_env(tmp_path: Path, monkeypatch) -> None:
    from click.testing import CliRunner

    from geogan.cli import main
    from geogan.devices import LaunchEnv
    from geogan.errors import InputError
    from geogan.train import DistInfo, TrainConfig, train
    from geogan.translate import rank_share

    assert DistInfo is LaunchEnv
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "2")
    assert rank_share() == (2, 3)
    monkeypatch.setenv("RANK", "3")
    with pytest.raises(InputError, match="RANK=3 does not fit WORLD_SIZE=3"):
        rank_share()
    # training checks the same variables first, before it looks at the data or the run folder
    with pytest.raises(InputError, match="RANK=3 does not fit WORLD_SIZE=3"):
        train(TrainConfig(a=tmp_path / "a", b=tmp_path / "b", output=tmp_path / "run"))
    assert not (tmp_path / "run").exists()
    # the CLI reports it in one line before it opens anything
    monkeypatch.setenv("RANK", "one")
    result = CliRunner().invoke(main, ["--progress", "none", "translate", str(tmp_path / "c"),
                                       str(tmp_path / "in.tif"), "-o", str(tmp_path / "o")])
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: RANK='one' is not an integer"), lines


def test_a_process_that_left_gloo_ends_without_cpp_teardown(tmp_path: Path) -> None:
    """torch's gloo threads outlive destroy_process_group; torn down at exit they now and
    then abort the process (SIGABRT), so the CLI ends such a process with os._exit after
    flushing: its output is complete, its exit status kept, and no exit handler runs."""
    marker = tmp_path / "atexit-ran"
    code = ("import atexit, pathlib, sys\n"
            "import geogan.train.runtime as rt\n"
            f"atexit.register(pathlib.Path({str(marker)!r}).touch)\n"
            "rt.gloo_threads_left = {left}\n"
            "from geogan.cli import main\n"
            "sys.argv = ['geogan', {args}]\n"
            "main()\n")
    for left, args, status in ((True, "'--version'", 0), (True, "'info', '/no/such.tif'", 1),
                               (False, "'--version'", 0)):
        marker.unlink(missing_ok=True)
        proc = subprocess.run([sys.executable, "-c", code.format(left=left, args=args)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == status, proc.stderr
        assert ("geogan, version" in proc.stdout) == (status == 0)
        assert proc.stderr.startswith("Error: ") == (status == 1)
        assert marker.exists() != left  # os._exit skips exit handlers (and C++'s teardown)
