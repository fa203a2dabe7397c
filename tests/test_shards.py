"""Job arrays as ranks: each engine's variables, --shard, the rule that shares out a batch, and
translate / tile taking their share through the CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import cli_error

from geogan.cli import main
from geogan.errors import InputError
from geogan.shards import Share, parse_shard, task_of, task_share

#: Every variable the share is read from, so the tests run clean inside a real array job.
_ALL = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP",
        "SLURM_ARRAY_TASK_COUNT", "JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX",
        "GEOGAN_TASK_COUNT", "RANK", "WORLD_SIZE", "LOCAL_RANK")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    for name in _ALL:
        monkeypatch.delenv(name, raising=False)


# --------------------------------------------------------------------------- the engines


@pytest.mark.parametrize(("env", "shard", "want"), [
    ({}, None, Share(0, 1, "")),
    ({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "4"}, None, Share(2, 4, "Slurm")),
    # sbatch --array=1-4: the first task is 1, and its index is 0
    ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "4"},
     None, Share(0, 4, "Slurm")),
    ({"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "4"},
     None, Share(3, 4, "Slurm")),
    # sbatch --array=10-16:2 is 10, 12, 14, 16
    ({"SLURM_ARRAY_TASK_ID": "14", "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_STEP": "2",
      "SLURM_ARRAY_TASK_MAX": "16", "SLURM_ARRAY_TASK_COUNT": "4"}, None, Share(2, 4, "Slurm")),
    # an older Slurm without SLURM_ARRAY_TASK_COUNT: the count from GEOGAN_TASK_COUNT
    ({"SLURM_ARRAY_TASK_ID": "3", "GEOGAN_TASK_COUNT": "5"}, None, Share(3, 5, "Slurm")),
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "5", "GEOGAN_TASK_COUNT": " 5 "},
     None, Share(3, 5, "Slurm")),
    ({"JOB_COMPLETION_INDEX": "7", "GEOGAN_TASK_COUNT": "8"}, None, Share(7, 8, "Kubernetes")),
    ({"AWS_BATCH_JOB_ARRAY_INDEX": "0", "GEOGAN_TASK_COUNT": "1"}, None,
     Share(0, 1, "AWS Batch")),
    ({"AWS_BATCH_JOB_ARRAY_INDEX": "5"}, "1/3", Share(1, 3, "`shard`")),  # --shard wins
    ({"JOB_COMPLETION_INDEX": "x"}, " 0/2 ", Share(0, 2, "`shard`")),  # ... even over nonsense
    ({"RANK": "1", "WORLD_SIZE": "2"}, None, Share(1, 2, "torchrun")),
    ({"RANK": "0", "WORLD_SIZE": "1", "JOB_COMPLETION_INDEX": "1", "GEOGAN_TASK_COUNT": "2"},
     None, Share(1, 2, "Kubernetes")),  # torchrun alone is no conflict
])
def test_each_engine_gives_the_task(env: dict[str, str], shard: str | None, want: Share) -> None:
    assert task_share(shard, env) == want


@pytest.mark.parametrize(("env", "shard", "message"), [
    ({}, "3", "`shard` '3' is not I/N"),
    ({}, "a/4", "`shard` 'a/4' is not I/N"),
    ({}, "1/2/3", "`shard` '1/2/3' is not I/N"),
    ({}, "4/4", "`shard` 4/4: task 4 does not fit 4 task(s)"),
    ({}, "-1/4", "`shard` -1/4: task -1 does not fit 4 task(s)"),
    ({}, "0/0", "`shard` 0/0: task 0 does not fit 0 task(s)"),
    ({"RANK": "0", "WORLD_SIZE": "2"}, "0/2", "`shard` 0/2 and torchrun's WORLD_SIZE=2 both"),
    ({"SLURM_ARRAY_TASK_ID": "one", "SLURM_ARRAY_TASK_COUNT": "4"}, None,
     "SLURM_ARRAY_TASK_ID='one' is not an integer"),
    ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "four"}, None,
     "SLURM_ARRAY_TASK_COUNT='four' is not an integer"),
    ({"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "4"}, None,
     "SLURM_ARRAY_TASK_ID: task 4 does not fit the 4 task(s) of the Slurm array"),
    ({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "4"},
     None, "SLURM_ARRAY_TASK_ID: task -1 does not fit"),
    ({"SLURM_ARRAY_TASK_ID": "13", "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_STEP": "2",
      "SLURM_ARRAY_TASK_COUNT": "4"}, None, "SLURM_ARRAY_TASK_ID=13 is not on the array's steps"),
    ({"SLURM_ARRAY_TASK_ID": "1"}, None, "this Slurm array task needs the number of tasks"),
    # a rerun of some tasks only (sbatch --array=5,17) renumbers them: refused
    ({"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_MAX": "17",
      "SLURM_ARRAY_TASK_COUNT": "2"}, None,
     "the Slurm array's 2 task(s) from 5 to 17 are not a range"),
    ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "4", "GEOGAN_TASK_COUNT": "8"}, None,
     "GEOGAN_TASK_COUNT=8 contradicts the Slurm array's 4 task(s)"),
    ({"JOB_COMPLETION_INDEX": "2"}, None, "this Kubernetes array task needs the number of tasks"),
    ({"JOB_COMPLETION_INDEX": "2", "GEOGAN_TASK_COUNT": "2"}, None,
     "JOB_COMPLETION_INDEX: task 2 does not fit the 2 task(s) of the Kubernetes array"),
    ({"JOB_COMPLETION_INDEX": "0", "GEOGAN_TASK_COUNT": "0"}, None,
     "the Kubernetes array has 0 task(s)"),
    ({"JOB_COMPLETION_INDEX": "0", "GEOGAN_TASK_COUNT": "2.0"}, None,
     "GEOGAN_TASK_COUNT='2.0' is not an integer"),
    ({"AWS_BATCH_JOB_ARRAY_INDEX": "-3", "GEOGAN_TASK_COUNT": "4"}, None,
     "AWS_BATCH_JOB_ARRAY_INDEX: task -3 does not fit"),
    ({"AWS_BATCH_JOB_ARRAY_INDEX": "1"}, None,
     "this AWS Batch array task needs the number of tasks"),
    ({"AWS_BATCH_JOB_ARRAY_INDEX": "1", "JOB_COMPLETION_INDEX": "1", "GEOGAN_TASK_COUNT": "2"},
     None, "JOB_COMPLETION_INDEX and AWS_BATCH_JOB_ARRAY_INDEX are both set"),
    ({"GEOGAN_TASK_COUNT": "4"}, None, "GEOGAN_TASK_COUNT is set but no job-array index is"),
    ({"JOB_COMPLETION_INDEX": "1", "GEOGAN_TASK_COUNT": "2", "RANK": "1", "WORLD_SIZE": "2"},
     None, "JOB_COMPLETION_INDEX (Kubernetes job array) and torchrun's WORLD_SIZE=2 are both set"),
    ({"RANK": "2", "WORLD_SIZE": "2"}, None, "RANK=2 does not fit WORLD_SIZE=2"),
])
def test_bad_settings_are_one_line_errors(env: dict[str, str], shard: str | None,
                                          message: str) -> None:
    with pytest.raises(InputError) as caught:
        task_share(shard, env)
    text = caught.value.template
    assert text.startswith(message), text
    assert "\n" not in text and ";" in text  # one line that says what to do


def test_parse_shard_reads_task_and_count() -> None:
    assert parse_shard("0/1") == (0, 1)
    assert parse_shard(" 7 / 8 ") == (7, 8)


# --------------------------------------------------------------------------- the rule


def test_every_name_is_in_exactly_one_share_and_adding_files_moves_none() -> None:
    names = [f"m_{i:05d}_ne_14_060_20200101.tif" for i in range(4000)]
    for count in (1, 3, 8):
        shares = [Share(i, count, "`shard`").pick(names, str) for i in range(count)]
        assert sorted(n for share in shares for n in share) == sorted(names)
        assert all(n in shares[task_of(n, count)] for n in names[:50])
        # about as even as round-robin once there are many files per task
        assert max(len(s) for s in shares) < 1.1 * len(names) / count
    before = {n: task_of(n, 8) for n in names}
    more = names[:1000] + [f"late_{i}.tif" for i in range(500)] + names[1000:]
    assert all(before[n] == task_of(n, 8) for n in more if n in before)
    # the share depends on the file's name only, not the folder or the list's order
    share = Share(5, 8, "Slurm")
    assert share.pick(list(reversed(names)), str) == list(reversed(share.pick(names, str)))


def test_torchrun_keeps_its_round_robin() -> None:
    names = [f"r{i}.tif" for i in range(5)]
    assert Share(0, 2, "torchrun").pick(names, str) == ["r0.tif", "r2.tif", "r4.tif"]
    assert Share(1, 2, "torchrun").pick(names, str) == ["r1.tif", "r3.tif"]
    assert Share().pick(names, str) == names


# --------------------------------------------------------------------------- through the CLI


def _cli(*args: object, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, ["--progress", "none", *map(str, args)], env=env)


def _one_error(result) -> str:
    """The ``Error:`` line, alone on stderr, of a failed command."""
    return cli_error(result, alone=True)


def test_translate_refuses_a_bad_share_in_one_line(make_raster, tmp_path, tiny_checkpoint):
    src = make_raster("in/a.tif", 24, 20)
    out = tmp_path / "out"
    msg = _one_error(_cli("translate", tiny_checkpoint, src.parent, "-o", out, "--shard", "4/4"))
    assert msg.startswith("Error: --shard 4/4: task 4 does not fit 4 task(s)")
    msg = _one_error(_cli("translate", tiny_checkpoint, src.parent, "-o", out,
                          env={"JOB_COMPLETION_INDEX": "1", "GEOGAN_TASK_COUNT": "2",
                               "WORLD_SIZE": "2", "RANK": "0"}))
    assert "torchrun's WORLD_SIZE=2 are both set" in msg
    msg = _one_error(_cli("translate", tiny_checkpoint, src.parent, "-o", out,
                          env={"AWS_BATCH_JOB_ARRAY_INDEX": "0"}))
    assert msg.startswith("Error: this AWS Batch array task needs the number of tasks; set "
                          "GEOGAN_TASK_COUNT") and "--shard I/N" in msg
    assert not out.exists()


def test_array_tasks_share_out_translate_and_leave_complete_outputs_alone(
        make_raster, tmp_path, tiny_checkpoint):
    names = [f"t{i:02d}.tif" for i in range(9)]
    for i, name in enumerate(names):
        make_raster(f"in/{name}", 24, 20, seed=i)
    out = tmp_path / "out"
    common = (tiny_checkpoint, tmp_path / "in", "-o", out, "--tile", "16", "--overlap", "4",
              "-j", "1")
    listed = {}
    for task in range(3):
        result = _cli("translate", *common, env={"SLURM_ARRAY_TASK_ID": str(task + 1),
                                                 "SLURM_ARRAY_TASK_MIN": "1",
                                                 "SLURM_ARRAY_TASK_COUNT": "3"})
        assert result.exit_code == 0, result.output
        listed[task] = [Path(p).name for p in result.stdout.split()]
        assert listed[task] == [n for n in names if task_of(n, 3) == task]
    assert sorted(sum(listed.values(), [])) == sorted(p.name for p in out.iterdir()) == names
    inodes = {p.name: p.stat().st_ino for p in out.iterdir()}
    # a retried task finds its outputs complete: no --skip-existing needed, nothing rewritten
    result = _cli("translate", *common, "--shard", "1/3")
    assert result.exit_code == 0, result.output
    assert {p.name: p.stat().st_ino for p in out.iterdir()} == inodes
    # --overwrite redoes the task's share, and only that
    result = _cli("translate", *common, "--shard", "1/3", "--overwrite")
    assert result.exit_code == 0, result.output
    redone = {p.name for p in out.iterdir() if p.stat().st_ino != inodes[p.name]}
    assert redone == set(listed[1])
    # a task with no input of its own has nothing to do, and says so by listing nothing
    empty = next(i for i in range(50) if all(task_of(n, 50) != i for n in names))
    result = _cli("translate", *common, "--shard", f"{empty}/50")
    assert result.exit_code == 0 and result.stdout.strip() == "", result.output


def test_array_tasks_tile_into_parts(make_raster, tmp_path):
    names = [f"s{i}.tif" for i in range(5)]
    for i, name in enumerate(names):
        make_raster(f"in/{name}", 32, 32, seed=i)
    out = tmp_path / "chips"
    for task in range(2):
        result = _cli("tile", tmp_path / "in", "-o", out, "--size", "16",
                      env={"JOB_COMPLETION_INDEX": str(task), "GEOGAN_TASK_COUNT": "2"})
        assert result.exit_code == 0, result.output
        part = out / f"part-{task:04d}-of-0002"
        mine = [n for n in names if task_of(n, 2) == task]
        assert f"Wrote {4 * len(mine)} chips to {part}" in result.stdout
        assert sorted({p.name.split("__")[0] + ".tif" for p in part.glob("*.tif")}) == mine
        assert (part / "index.gpkg").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["part-0000-of-0002", "part-0001-of-0002"]
    stamp = os.stat(out / "part-0001-of-0002").st_ino
    result = _cli("tile", tmp_path / "in", "-o", out, "--size", "16", "--shard", "1/2")
    assert result.exit_code == 0, result.output
    assert "is complete from an earlier try" in result.stdout
    assert os.stat(out / "part-0001-of-0002").st_ino == stamp
    msg = _one_error(_cli("tile", tmp_path / "in", "-o", out, "--size", "16", "--shard", "2/2"))
    assert msg.startswith("Error: --shard 2/2: task 2 does not fit 2 task(s)")
