"""Atomic outputs: every file and folder is written to a hidden temporary beside it and
renamed onto its name only once complete.

- :func:`atomic_output` (a file) and :func:`atomic_directory` (a folder) rename the
  temporary (:func:`temp_path`) onto the output only once it was written, closed and
  checked without error, after the checks of :mod:`geogan.fileio.overwrite`. A failed
  write removes the temporary; the previous output stays as it was.
- Temporaries of a process that died (``kill -9``, power cut) are removed by the next run
  over the same output (:func:`remove_leftovers`); temporaries carry the writer's process
  id, so a running job's are never touched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from geogan.errors import OutputError
from geogan.fileio.errors import write_error
from geogan.fileio.faults import fault_point
from geogan.fileio.overwrite import FolderKind, check_output_file, check_replaceable
from geogan.inputs import GdalOutput
from geogan.spec import names

log = logging.getLogger(__name__)

#: ``.<name>.<pid>.<random>.tmp<suffix>``: hidden temporaries beside an output.
_TEMP_RE = names.TEMP_RE


def temp_path(final: Path, suffix: str | None = None, kind: str = "tmp") -> Path:
    """A hidden, unique temporary name beside ``final`` that records this process's id."""
    final = Path(final)
    ext = final.suffix if suffix is None else suffix
    return final.with_name(names.temp_name(final.name, os.getpid(), secrets.token_hex(4), kind,
                                           ext))


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_leftovers(final: Path) -> list[Path]:
    """Remove temporaries of ``final`` left by processes that are gone; return them."""
    final = Path(final)
    parent = final.parent if str(final.parent) else Path(".")
    removed: list[Path] = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP_RE.match(entry.name)
        if not m or m.group("name") != final.name or _pid_alive(int(m.group("pid"))):
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted run: %s", len(removed),
                 ", ".join(p.name for p in removed))
    return removed


@contextlib.contextmanager
def atomic_output(path: Path, overwrite: bool = False,
                  verify: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    The temporary is renamed only after the block returned without error and, with
    ``verify``, ``verify(tmp)`` passed (e.g. :func:`verify_raster`). On any exception the
    temporary is removed, so no half-written output is left behind and an existing file
    is untouched. ``OSError`` raised inside the block becomes an :class:`OutputError`.
    """
    if isinstance(path, GdalOutput):
        from geogan.fileio.vsi import gdal_output

        with gdal_output(path, overwrite, verify) as tmp:
            yield tmp
        return
    path = Path(path)
    check_output_file(path, overwrite)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(path, exc) from exc
    remove_leftovers(path)
    tmp = temp_path(path)
    try:
        try:
            yield tmp
        except OSError as exc:
            raise write_error(path, exc) from exc
        check_written(tmp, path, overwrite, verify)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise write_error(path, exc) from exc
        fault_point("after-rename", path)
        log.debug("wrote %s", path)
    except BaseException:
        with contextlib.suppress(OSError):
            if tmp.is_dir():
                shutil.rmtree(tmp)
            else:
                tmp.unlink(missing_ok=True)
        raise


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


def current_umask() -> int:
    """The process umask, for giving temporary files the permissions of ordinary ones."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_directory(path: Path, kind: FolderKind, overwrite: bool = False,
                     inputs: Iterable[str | os.PathLike[str]] = ()) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; move it onto ``path`` only on success.

    An existing non-empty ``path`` is replaced only as :func:`check_replaceable` allows,
    and only once the new one is complete.
    """
    path = Path(path)
    inputs = list(inputs)
    check_replaceable(path, kind, overwrite, inputs)
    parent = path.parent
    tmp = temp_path(path, suffix="")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(path)
        tmp.mkdir()
    except OSError as exc:
        raise OutputError(f"cannot create output folder {path}: {exc.strerror}; "
                          "choose a writable location") from exc
    try:
        try:
            yield tmp
        except OSError as exc:
            raise write_error(path, exc) from exc
        check_replaceable(path, kind, overwrite, inputs)  # nothing new appeared meanwhile
        fault_point("before-rename", path)
        try:
            if path.exists():
                old = temp_path(path, suffix="", kind="old")
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
        except OSError as exc:
            raise write_error(path, exc) from exc
        fault_point("after-rename", path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
