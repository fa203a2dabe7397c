"""One geogan process at a time per output folder.

A job that writes a folder (a training run, a chip folder, the demo's folder) holds the
lock of that folder for as long as it works on it (:func:`output_lock`). The lock is an
``flock`` on a small file beside the folder, ``.<name>.geogan-lock`` in the same parent
(:func:`lock_path`): beside it, not inside, because the folder itself is replaced by a
rename when a job commits it. The kernel releases the lock when the holder dies, even by
``kill -9``, so a crash never leaves an output locked; the file itself is removed when the
lock is released and may outlive a killed job, harmlessly (it is geogan's, and the next
job over the same output takes it over).

A second job over the same folder, by any spelling of its path (``run``, ``./run``, an
absolute path, a symbolic link to it), is refused at once with one line naming the holder's
process id. Where the file system cannot lock (some network mounts), jobs go on unlocked
with a warning.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from geogan.contract import names
from geogan.errors import OutputError

log = logging.getLogger(__name__)

try:  # POSIX
    import fcntl
except ImportError:  # Windows: msvcrt's byte-range lock, also released at process death
    fcntl = None  # type: ignore[assignment]


def lock_path(output: str | os.PathLike[str]) -> Path:
    """The lock file of ``output``: ``.<name>.geogan-lock`` beside its real path."""
    real = Path(os.path.realpath(output))
    return real.parent / names.lock_name(real.name)


def _try_lock(fd: int) -> bool:
    """Take the lock on ``fd`` without waiting; False if another process holds it."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES, errno.EDEADLK):
            return False
        raise
    return True


def _holder(fd: int) -> int | None:
    """The process id the holder wrote into the lock file, if it did yet."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        os.lseek(fd, 0, os.SEEK_SET)
        return int(os.read(fd, 32).decode("ascii").split()[0])
    return None


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (not removed or replaced)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def _make_parents(folder: Path, output: Path) -> list[Path]:
    """Create ``folder`` (where ``output`` goes) and its missing parents; return those
    created, deepest first."""
    missing: list[Path] = []
    probe = folder
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {output}: {exc.strerror}; choose a "
                          "writable location") from exc
    return missing


def _open_read_only(path: Path, flags: int) -> int:
    try:
        return os.open(path, os.O_RDONLY | flags)
    except OSError as exc:
        raise OutputError(f"cannot open the lock file {path} ({exc.strerror}); choose a "
                          "writable output location") from exc


def _acquire(path: Path, output: Path) -> int | None:
    """Open and lock ``path``; the file descriptor, or None where locks are not supported."""
    cloexec = getattr(os, "O_CLOEXEC", 0)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | cloexec, 0o666)
        except PermissionError:  # another user's lock file: it locks as well read-only
            fd = _open_read_only(path, cloexec)
        except OSError as exc:
            raise OutputError(f"cannot create the lock file {path} ({exc.strerror}); choose a "
                              "writable output location") from exc
        try:
            locked = _try_lock(fd)
        except OSError as exc:  # the file system has no locks: go on without
            os.close(fd)
            log.warning("cannot lock %s (%s); make sure no other geogan job writes %s",
                        path, exc.strerror, output)
            return None
        if not locked:
            pid = _holder(fd)
            os.close(fd)
            who = f" (pid {pid})" if pid is not None else ""
            raise OutputError(f"{output} is in use by another geogan process{who}; wait for "
                              "it or choose another output")
        if _same_file(fd, path):
            with contextlib.suppress(OSError):  # the holder's id, for the message of others
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, f"{os.getpid()}\n".encode("ascii"))
            return fd
        os.close(fd)  # the holder released and removed it meanwhile: lock the new one


@contextlib.contextmanager
def output_lock(output: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the lock of output folder ``output`` for the block; yield the lock file's path.

    Raises :class:`OutputError` at once when another process holds it. Missing parent
    folders are created for the lock file, and removed again at the end if they are
    still empty (the job failed before it wrote anything there).
    """
    output = Path(output)
    path = lock_path(output)
    created = _make_parents(path.parent, output)
    fd = _acquire(path, output)
    try:
        yield path
    finally:
        if fd is not None:
            if fcntl is not None:  # remove it while holding it: a waiter sees it is gone
                with contextlib.suppress(OSError):
                    path.unlink()
            os.close(fd)
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()
