"""The outputs of a geogan job the QGIS plugin removes when it fails or is cancelled.

Imports neither QGIS nor geogan nor torch (see :mod:`.backend`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .contract import names


@dataclass(frozen=True)
class _OutputState:
    path: Path
    existed: bool
    siblings: frozenset[str]


def snapshot_outputs(paths: Sequence[Path]) -> tuple[_OutputState, ...]:
    """Remember which outputs and temporary siblings exist before a job starts."""
    states = []
    for p in paths:
        p = Path(p)
        try:
            siblings = frozenset(os.listdir(p.parent)) if p.parent.is_dir() else frozenset()
        except OSError:
            siblings = frozenset()
        states.append(_OutputState(p, p.exists(), siblings))
    return tuple(states)


def remove_partial_outputs(states: Sequence[_OutputState],
                           temporaries_only: bool = False) -> list[Path]:
    """Remove outputs a failed job created and its hidden temporaries; return what was removed.

    Outputs that existed before the job are left alone (geogan replaces them only
    once a new one is complete), as are all outputs with ``temporaries_only``.
    Temporaries are the new hidden entries beside an output that geogan's atomic
    writers name after it (or after a sidecar of its stem): geogan.contract.names.TEMP_RE.
    """
    removed: list[Path] = []
    for state in states:
        p = state.path
        if not temporaries_only and not state.existed and (p.exists() or p.is_symlink()):
            _remove(p)
            removed.append(p)
        if not p.parent.is_dir():
            continue
        for name in sorted(set(os.listdir(p.parent)) - state.siblings):
            final = names.temp_of(name)
            if final is None or not (final == p.name or final.startswith(p.stem + ".")):
                continue
            if _put_back(p.parent / name, p.parent / final):
                continue
            _remove(p.parent / name)
            removed.append(p.parent / name)
    return removed


def _put_back(temp: Path, final: Path) -> bool:
    """An output the killed job had moved aside (``.old``) to replace it, with nothing in
    its place yet, goes back under its name (never deleted: it is the only copy)."""
    m = names.TEMP_RE.match(temp.name)
    if m is None or m.group("kind") != "old" or final.exists() or final.is_symlink():
        return False
    with contextlib.suppress(OSError):
        os.rename(temp, final)
    return True


def _remove(p: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
