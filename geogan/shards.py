"""This process's share of a batch: a job-array task (Slurm, Kubernetes, AWS Batch, ``--shard``)
or a torchrun rank.

A batch of rasters is shared out over independent tasks the way the engines GIS teams
run already number them:

========================  ===================================  =================================
engine                    task index                           task count
========================  ===================================  =================================
``--shard I/N``           I                                    N
Slurm job array           ``SLURM_ARRAY_TASK_ID`` minus        ``SLURM_ARRAY_TASK_COUNT``
                          ``SLURM_ARRAY_TASK_MIN`` (divided
                          by ``SLURM_ARRAY_TASK_STEP``)
Kubernetes Indexed Job    ``JOB_COMPLETION_INDEX``             ``GEOGAN_TASK_COUNT``
AWS Batch array job       ``AWS_BATCH_JOB_ARRAY_INDEX``        ``GEOGAN_TASK_COUNT``
torchrun                  ``RANK``                             ``WORLD_SIZE``
========================  ===================================  =================================

``--shard`` wins over the environment. A Slurm array must be a range (``--array=0-63``,
``--array=1-64%16``, ``--array=0-126:2``): a list such as ``--array=5,17`` renumbers its
tasks and is refused. A job-array index together with torchrun's
``WORLD_SIZE`` > 1, two engines' indexes at once, an index outside ``0..N-1`` or a
count that is missing or not a positive integer is a one-line :class:`InputError`.

Which inputs are a task's (:meth:`Share.owns`): a job-array task (and ``--shard``)
takes the inputs whose **file name** hashes to its index, ``sha256(name)`` read as a
big-endian integer (first 8 bytes) modulo N. The rule looks at nothing but the name
and N, so a task that is retried, or starts later than the others while files are
still arriving, never drops or doubles a file that the others took; shares are even to
about one part in the square root of the files per task. torchrun's ranks, which start
together on one list, keep their exact round-robin over that list.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from geogan.devices import launch_env
from geogan.errors import InputError

T = TypeVar("T")

#: The environment variable that gives the task count where the engine does not
#: (Kubernetes Indexed Jobs, AWS Batch array jobs).
TASK_COUNT_VARIABLE = "GEOGAN_TASK_COUNT"

#: Sources of a share that are job arrays (independent, retried tasks).
#: ``shard`` given is named as a parameter in messages (the CLI's ``--shard``).
SHARD_SOURCE = "`shard`"
ARRAY_SOURCES = (SHARD_SOURCE, "Slurm", "Kubernetes", "AWS Batch")

#: Each engine's index variable, by the engine's name.
INDEX_VARIABLES = {"Slurm": "SLURM_ARRAY_TASK_ID", "Kubernetes": "JOB_COMPLETION_INDEX",
                   "AWS Batch": "AWS_BATCH_JOB_ARRAY_INDEX"}


@dataclass(frozen=True)
class Share:
    """Task ``index`` of ``count``, and where that came from (``source``; "" alone)."""

    index: int = 0
    count: int = 1
    source: str = ""

    @property
    def is_array(self) -> bool:
        """Whether this is a job-array task (or ``--shard``): independent and retried alone."""
        return self.source in ARRAY_SOURCES

    @property
    def enabled(self) -> bool:
        """Whether the batch is shared with other processes."""
        return self.count > 1

    def describe(self) -> str:
        """``task 3 of 8 (Slurm)`` (numbered from 0, as the engines do)."""
        word = "rank" if self.source == "torchrun" else "task"
        return f"{word} {self.index} of {self.count} ({self.source or 'alone'})"

    def owns(self, name: str) -> bool:
        """Whether the input named ``name`` (a file name) is this job-array task's."""
        return task_of(name, self.count) == self.index

    def pick(self, items: Sequence[T], name: Callable[[T], str]) -> list[T]:
        """This process's items, in their order: by file name for a job array
        (``name(item)``), round-robin for torchrun's ranks."""
        if self.count == 1:
            return list(items)
        if not self.is_array:
            return list(items[self.index::self.count])
        return [item for item in items if self.owns(name(item))]


def task_of(name: str, count: int) -> int:
    """The task (``0..count-1``) that the input named ``name`` belongs to."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def parse_shard(text: str) -> tuple[int, int]:
    """``"3/8"`` -> ``(3, 8)``; anything else is a one-line :class:`InputError`."""
    index_text, sep, count_text = text.strip().partition("/")
    try:
        if not sep:
            raise ValueError
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise InputError(f"`shard` {text!r} is not I/N (task I of N, numbered from 0); "
                         "write it like 3/8") from None
    if count < 1 or not 0 <= index < count:
        raise InputError(f"`shard` {text}: task {index} does not fit {count} task(s); tasks "
                         f"are numbered 0 to N-1")
    return index, count


def _integer(environ: Mapping[str, str], name: str, what: str) -> int | None:
    text = environ.get(name, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise InputError(f"{name}={text!r} is not an integer; {what}") from None


def _count(environ: Mapping[str, str], engine: str, given: int | None) -> int:
    """The task count: the engine's (``given``), else ``GEOGAN_TASK_COUNT``; they must agree."""
    fix = (f"set {TASK_COUNT_VARIABLE} to the number of tasks of the array, or pass "
           "`shard` I/N")
    ours = _integer(environ, TASK_COUNT_VARIABLE, fix)
    if given is not None and ours is not None and given != ours:
        raise InputError(f"{TASK_COUNT_VARIABLE}={ours} contradicts the {engine} array's "
                         f"{given} task(s); unset {TASK_COUNT_VARIABLE}")
    count = given if given is not None else ours
    if count is None:
        raise InputError(f"this {engine} array task needs the number of tasks; {fix}")
    if count < 1:
        raise InputError(f"the {engine} array has {count} task(s); {fix}")
    return count


def _slurm(environ: Mapping[str, str]) -> tuple[int, int]:
    what = "Slurm sets it for job arrays (sbatch --array); unset it to run alone"
    task = _integer(environ, "SLURM_ARRAY_TASK_ID", what)
    low = _integer(environ, "SLURM_ARRAY_TASK_MIN", what) or 0
    step = _integer(environ, "SLURM_ARRAY_TASK_STEP", what) or 1
    assert task is not None
    offset = task - low
    if step < 1 or offset % step:
        raise InputError(f"SLURM_ARRAY_TASK_ID={task} is not on the array's steps from "
                         f"SLURM_ARRAY_TASK_MIN={low} by {step}; submit a range such as "
                         "--array=0-15, or pass `shard` I/N")
    count = _count(environ, "Slurm", _integer(environ, "SLURM_ARRAY_TASK_COUNT", what))
    high = _integer(environ, "SLURM_ARRAY_TASK_MAX", what)
    if high is not None and (high - low) // step + 1 != count:
        raise InputError(f"the Slurm array's {count} task(s) from {low} to {high} are not a "
                         "range (e.g. --array=5,17), so their place in the batch is unknown; "
                         "submit the whole --array range again (complete outputs are left "
                         "alone) or pass `shard` I/N")
    return offset // step, count


def job_array(environ: Mapping[str, str] | None = None) -> Share | None:
    """The job-array task this process is, from the engines' variables; None if none is set."""
    environ = os.environ if environ is None else environ
    engines = [e for e, v in INDEX_VARIABLES.items() if environ.get(v, "").strip()]
    if len(engines) > 1:
        names = " and ".join(INDEX_VARIABLES[e] for e in engines)
        raise InputError(f"{names} are both set, so this task's place is ambiguous; unset "
                         "one, or pass `shard` I/N")
    if not engines:
        if environ.get(TASK_COUNT_VARIABLE, "").strip():
            raise InputError(f"{TASK_COUNT_VARIABLE} is set but no job-array index is "
                             f"({', '.join(INDEX_VARIABLES.values())}); run as an array "
                             f"task, pass `shard` I/N, or unset {TASK_COUNT_VARIABLE}")
        return None
    engine = engines[0]
    if engine == "Slurm":
        index, count = _slurm(environ)
    else:
        variable = INDEX_VARIABLES[engine]
        index = _integer(environ, variable, f"{engine} sets it for array tasks; unset it to "
                                            "run alone")
        assert index is not None
        count = _count(environ, engine, None)
    if not 0 <= index < count:
        counted = "SLURM_ARRAY_TASK_COUNT" if engine == "Slurm" else TASK_COUNT_VARIABLE
        raise InputError(f"{INDEX_VARIABLES[engine]}: task {index} does not fit the {count} "
                         f"task(s) of the {engine} array (numbered 0 to {count - 1}); check "
                         f"{counted}")
    return Share(index, count, engine)


def task_share(shard: str | None = None, environ: Mapping[str, str] | None = None) -> Share:
    """This process's share of a batch: ``shard`` (``"I/N"``), else a job array's task,
    else torchrun's rank (see the module's table); alone ``Share(0, 1)``."""
    environ = os.environ if environ is None else environ
    launch = launch_env(environ)
    if shard is not None and shard.strip():
        index, count = parse_shard(shard)
        if launch.enabled:
            raise InputError(f"`shard` {shard} and torchrun's WORLD_SIZE={launch.world_size} "
                             "both share out the batch; use one of them")
        return Share(index, count, SHARD_SOURCE)
    array = job_array(environ)
    if array is not None:
        if launch.enabled:
            raise InputError(f"{INDEX_VARIABLES[array.source]} ({array.source} job array) and "
                             f"torchrun's WORLD_SIZE={launch.world_size} are both set; run "
                             "one geogan process per array task, not torchrun")
        return array
    if launch.enabled:
        return Share(launch.rank, launch.world_size, "torchrun")
    return Share()
