"""Safe output handling: never overwrite without permission, never leave half-written files."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from geogan.errors import OutputError

log = logging.getLogger(__name__)


def check_output_file(path: Path, overwrite: bool) -> None:
    """Fail early if ``path`` exists without ``overwrite`` or its folder cannot be written."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputError(f"{path} already exists; pass --overwrite to replace it")
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"{parent} is not a folder; choose another output path")
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write to folder {probe}; choose a writable output location")


@contextlib.contextmanager
def atomic_output(path: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    On any exception the temporary file is removed, so no half-written output is
    left behind and an existing file is untouched.
    """
    path = Path(path)
    check_output_file(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}",
                                    dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # writers such as GDAL want to create the file themselves
    try:
        yield tmp
        if not tmp.exists():
            raise OutputError(f"nothing was written for {path}")
        fsync_path(tmp)
        os.replace(tmp, path)
        log.debug("wrote %s", path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_directory(path: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; move it onto ``path`` only on success.

    An existing non-empty ``path`` is an error unless ``overwrite`` (then it is
    replaced only once the new one is complete).
    """
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise OutputError(f"{path} exists and is not a folder; choose another output folder")
        if any(path.iterdir()) and not overwrite:
            raise OutputError(f"{path} already exists and is not empty; "
                              "pass --overwrite to replace it")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent))
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it private
    except OSError as exc:
        raise OutputError(f"cannot create output folder {path}: {exc.strerror}; "
                          "choose a writable location") from exc
    try:
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=parent))
            os.replace(path, old / "x")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def fsync_path(path: Path) -> None:
    """Flush a written file to disk (best effort on file systems that refuse)."""
    with contextlib.suppress(OSError), open(path, "rb") as fh:
        os.fsync(fh.fileno())


def current_umask() -> int:
    """The process umask, for giving temporary files the permissions of ordinary ones."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
