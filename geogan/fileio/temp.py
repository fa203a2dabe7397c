"""Temporary names beside an output, and the checks before one takes the output's place.

:mod:`geogan.fileio.atomic` (local outputs) and :mod:`geogan.fileio.vsi` (GDAL paths) both
build on these; neither imports the other's internals.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from geogan.contract import names
from geogan.errors import OutputError
from geogan.fileio.errors import write_error
from geogan.fileio.faults import fault_point


def temp_path(final: Path, suffix: str | None = None, kind: str = "tmp",
              token: str | None = None) -> Path:
    """A hidden, unique temporary name beside ``final`` that records this process's id.

    ``kind`` is ``"tmp"`` (a new output being written) or ``"old"`` (an output moved
    aside while a new one takes its name; :func:`swap_into_place` gives it the token of
    the new one's temporary).
    """
    final = Path(final)
    if not final.name:
        raise OutputError(f"{final} names no file or folder; give an output name")
    ext = final.suffix if suffix is None else suffix
    return final.with_name(names.temp_name(final.name, os.getpid(),
                                           token or secrets.token_hex(4), kind, ext))


def check_written(tmp: Path, path: Path, overwrite: bool,
                  verify: Callable[[Path], None] | None) -> None:
    """Before a temporary takes the place of ``path``: it was written, flushed and checked
    (``verify``), and nothing appeared at ``path`` meanwhile (without ``overwrite``)."""
    try:
        if not tmp.exists():
            raise OutputError(f"nothing was written for {path}")
        fsync_path(tmp)
        if verify is not None:
            verify(tmp)
    except OSError as exc:
        raise write_error(path, exc) from exc
    fault_point("before-rename", path)
    if not overwrite and path.exists():
        raise OutputError(f"{path} appeared while it was being written; pass `overwrite` "
                          "to replace it")


def fsync_path(path: Path) -> None:
    """Flush a written file to disk (best effort on file systems that refuse)."""
    with contextlib.suppress(OSError), open(path, "rb") as fh:
        os.fsync(fh.fileno())
