"""Atomic outputs: every file and folder is written to a hidden temporary beside it and
renamed onto its name only once complete.

- :func:`atomic_output` (a file) and :func:`atomic_directory` (a folder) rename the
  temporary (:func:`temp_path`) onto the output only once it was written, closed and
  checked without error, after the checks of :mod:`geogan.fileio.overwrite`. A failed
  write removes the temporary; the previous output stays as it was.
- A folder that exists is replaced in two renames (:func:`swap_into_place`): the old one
  aside as ``.<name>.<pid>.<token>.old``, then the new one onto the name; the second is the
  commit. A kill between the two leaves no folder under the name: the next job over that
  output puts the old one back (:func:`remove_leftovers`), so a killed job, wherever it
  was killed, leaves the output as it was before the job, and never loses the only copy.
- Temporaries of a process that died (``kill -9``, power cut) are removed by the next run
  over the same output (:func:`remove_leftovers`); temporaries carry the writer's process
  id, so a running job's are never touched.
- A folder output is written under its lock (:mod:`geogan.fileio.lock`): one job at a time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from geogan.contract import names
from geogan.errors import OutputError
from geogan.fileio.errors import write_error
from geogan.fileio.faults import fault_point
from geogan.fileio.group import OutputGroup
from geogan.fileio.lock import output_lock
from geogan.fileio.overwrite import FolderKind, check_output_file, check_replaceable
from geogan.fileio.temp import check_written, fsync_path, temp_path
from geogan.fileio.vsi import gdal_output
from geogan.inputs import GdalOutput

__all__ = ["atomic_directory", "atomic_output", "check_written", "current_umask", "fsync_path",
           "output_folder", "remove_leftovers", "swap_into_place", "temp_path"]

log = logging.getLogger(__name__)



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


def _dead_temporaries(final: Path) -> list[tuple[Path, str, str]]:
    """``(path, kind, pid)`` of the temporaries of ``final`` whose process is gone."""
    parent = final.parent if str(final.parent) else Path(".")
    try:
        entries = list(parent.iterdir())
    except OSError:
        return []
    found = []
    for entry in entries:
        m = names.TEMP_RE.match(entry.name)
        if m and m.group("name") == final.name and not _pid_alive(int(m.group("pid"))):
            found.append((entry, m.group("kind"), m.group("pid")))
    return found


def _restore_moved_aside(final: Path, dead: list[tuple[Path, str, str]]) -> Path | None:
    """Put back an output a killed job had moved aside (``.old``) before it could put the
    new one in its place; the restored path, or None if there was nothing to restore.

    Such a job leaves the ``.old`` and its new ``.tmp`` (of the same process), and nothing
    under the name; an ``.old`` without a ``.tmp`` is one whose removal was cut short
    after the new folder took its place, an incomplete leftover.
    """
    if final.exists() or final.is_symlink():
        return None  # the swap was committed: an .old is a leftover
    tmps = {pid for _p, kind, pid in dead if kind == "tmp"}
    olds = [p for p, kind, pid in dead if kind == "old" and pid in tmps]
    if not olds:
        return None
    old = max(olds, key=lambda p: p.lstat().st_mtime)
    try:
        os.rename(old, final)
    except OSError as exc:
        raise OutputError(f"{final} was moved aside to {old.name} by a job that was killed, "
                          f"and cannot be put back ({exc.strerror}); rename {old} to "
                          f"{final.name} yourself") from exc
    log.warning("put back %s, which a killed job had moved aside to replace it", final)
    return old


def remove_leftovers(final: Path) -> list[Path]:
    """Remove temporaries of ``final`` left by processes that are gone; return them.

    If ``final`` is missing because a killed job had moved it aside (between the two
    renames of :func:`swap_into_place`), it is put back first: the job never committed.
    """
    final = Path(final)
    dead = _dead_temporaries(final)
    restored = _restore_moved_aside(final, dead)
    removed: list[Path] = []
    for entry, _kind, _pid in dead:
        if entry == restored:
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
                  verify: Callable[[Path], None] | None = None,
                  group: OutputGroup | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    The temporary is renamed only after the block returned without error and, with
    ``verify``, ``verify(tmp)`` passed (e.g. :func:`verify_raster`). On any exception the
    temporary is removed, so no half-written output is left behind and an existing file
    is untouched. ``OSError`` raised inside the block becomes an :class:`OutputError`.
    With ``group`` (:func:`~geogan.fileio.group.output_group`, local files only) the
    checked temporary waits for the group, which renames all its files or none.
    """
    if isinstance(path, GdalOutput):
        if group is not None:
            raise OutputError(f"{path}: files written together go to local folders only; "
                              "write to a local folder")
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
        if group is not None:
            group.add(tmp, path)
            return
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


def current_umask() -> int:
    """The process umask, for giving temporary files the permissions of ordinary ones."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def output_folder(path: str | os.PathLike[str]) -> Path:
    """The folder an output folder ``path`` stands for: a symbolic link's target (which
    is what gets replaced; the link stays), else ``path`` itself."""
    path = Path(path)
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def swap_into_place(tmp: Path, final: Path) -> None:
    """Rename the complete folder ``tmp`` onto ``final``, replacing a folder there.

    An existing ``final`` is first renamed aside (``.old``, with ``tmp``'s token) and
    removed once the new one is in place; renaming ``tmp`` onto ``final`` is the commit.
    If that rename fails, the old folder is put back.
    """
    fault_point("before-rename", final)
    try:
        if not final.exists():
            os.rename(tmp, final)
        else:
            m = names.TEMP_RE.match(tmp.name)
            old = temp_path(final, suffix="", kind="old", token=m.group("token") if m else None)
            os.rename(final, old)
            fault_point("between-renames", final)
            try:
                os.rename(tmp, final)
            except OSError:
                with contextlib.suppress(OSError):
                    os.rename(old, final)
                raise
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise write_error(final, exc) from exc
    fault_point("after-rename", final)


@contextlib.contextmanager
def atomic_directory(path: Path, kind: FolderKind, overwrite: bool = False,
                     inputs: Iterable[str | os.PathLike[str]] = ()) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; move it onto ``path`` only on success.

    An existing non-empty ``path`` is replaced only as :func:`check_replaceable` allows,
    and only once the new one is complete. The job holds ``path``'s lock throughout
    (:func:`~geogan.fileio.lock.output_lock`): a second job over it is refused. A
    symbolic link as ``path`` stays; the folder it points to is replaced.
    """
    path = output_folder(path)
    inputs = list(inputs)
    check_replaceable(path, kind, overwrite, inputs)
    with output_lock(path):
        check_replaceable(path, kind, overwrite, inputs)  # as another job may have left it
        tmp = temp_path(path, suffix="")
        try:
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
            swap_into_place(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
