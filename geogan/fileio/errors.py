"""Safe output handling: never overwrite without permission, never leave half-written files.

What geogan promises about a user's files, and where each promise is kept:

- Every output is written to a hidden temporary beside it (:func:`temp_path`) and renamed
  onto its name only once it was written, closed and checked without error
  (:func:`atomic_output`, :func:`atomic_directory`). A failed write raises
  :class:`~geogan.errors.OutputError` naming the file and the cause (:func:`write_error`),
  and removes the temporary; the previous output stays as it was.
- GDAL reports some write failures (a full disk while flushing its cache) only as error
  messages, not exceptions: :func:`gdal_errors` collects them and turns them into an error.
- ``--overwrite`` replaces a folder only if geogan made it: it carries geogan's marker and
  holds nothing but geogan's own files (:class:`FolderKind`, :func:`check_replaceable`).
  An input inside the output is always refused.
- Temporaries of a process that died (``kill -9``, power cut) are removed by the next run
  over the same output (:func:`remove_leftovers`); temporaries carry the writer's process
  id, so a running job's are never touched.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from geogan.errors import GeoganError, InputError, OutputError, first_line
from geogan.spec import names

log = logging.getLogger(__name__)

#: Called as ``hook(point, path)`` at every write boundary (before and after each rename);
#: tests use it to kill a process at each boundary. None in normal use.
_fault_hook: Callable[[str, Path], None] | None = None
#: ``.<name>.<pid>.<random>.tmp<suffix>``: hidden temporaries beside an output.
_TEMP_RE = names.TEMP_RE


#: Free space under which a failed write is reported as a full disk (GDAL's TIFF driver
#: often names only the failed call, e.g. "TIFFAppendToStrip: Write error").
_FULL_BYTES = 1 << 20


def set_fault_hook(hook: Callable[[str, Path], None] | None) -> None:
    """Install ``hook(point, path)``, called at each write boundary (for fault tests)."""
    global _fault_hook
    _fault_hook = hook


def fault_point(point: str, path: Path) -> None:
    """A write boundary: ``point`` names it (e.g. ``"before-rename"``), ``path`` the file."""
    if _fault_hook is not None:
        _fault_hook(point, path)


# --------------------------------------------------------------------------- errors


def free_bytes(path: Path) -> int | None:
    """Free bytes on the file system that holds ``path`` (or its nearest existing parent)."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        st = os.statvfs(probe)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


def format_bytes(n: float) -> str:
    """``123456789`` -> ``"118 MB"``."""
    for unit in ("bytes", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover


def check_free_space(path: Path, needed: int, *, certain: bool = True) -> None:
    """Fail (``certain``) or warn when ``needed`` bytes do not fit where ``path`` will be.

    ``certain`` means the output will be about ``needed`` bytes (uncompressed data); else
    ``needed`` is an upper bound (compressed outputs are smaller) and only a warning is given.
    """
    free = free_bytes(Path(path))
    if free is None or needed <= free:
        return
    if certain:
        raise OutputError(f"not enough space for {path}: it needs about "
                          f"{format_bytes(needed)} and {format_bytes(free)} are free; free "
                          "space or choose another output location")
    log.warning("%s may not fit: up to %s uncompressed, %s free", path, format_bytes(needed),
                format_bytes(free))


def write_error(path: Path, exc: BaseException | str) -> OutputError:
    """An :class:`OutputError` for a failed write of ``path``, naming the cause and what to do."""
    if isinstance(exc, OSError) and exc.errno is not None:
        cause = os.strerror(exc.errno).lower()
    else:
        cause = first_line(exc) if isinstance(exc, BaseException) else str(exc)
    text = cause.lower()
    free = free_bytes(Path(path).parent)
    if (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)) \
            or "no space left" in text or "disk full" in text or "quota" in text \
            or (free is not None and free < _FULL_BYTES):
        left = f", {format_bytes(free)} free" if free is not None else ""
        return OutputError(f"no space left on device writing {path}{left}; free space or "
                           "choose another output location")
    if (isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS)) \
            or "permission denied" in text or "read-only" in text:
        return OutputError(f"cannot write {path} ({cause}); choose a writable output location")
    return OutputError(f"writing {path} failed ({cause}); check free disk space and "
                       "permissions, then run again")


class _GdalErrors(logging.Handler):
    """Collects, per thread, the error messages GDAL signals through rasterio's loggers."""

    _LOGGERS = ("rasterio._err", "rasterio._env", "rasterio._io")

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.by_thread: dict[int, list[str]] = {}
        self.users = 0
        self.saved: list[tuple[int, bool]] = []
        self.guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        messages = self.by_thread.get(record.thread or 0)
        if messages is None:
            return
        try:
            text = record.getMessage()
        except Exception:  # a malformed record must not break the writer
            return
        if "signalled an error" in text or record.levelno >= logging.ERROR:
            match = re.search(r"msg='(.*)'", text)
            messages.append(match.group(1) if match else text)

    def start(self) -> list[str]:
        with self.guard:
            if self.users == 0:
                loggers = [logging.getLogger(n) for n in self._LOGGERS]
                self.saved = [(lg.level, lg.propagate) for lg in loggers]
                for lg in loggers:
                    lg.addHandler(self)
                    if lg.getEffectiveLevel() > logging.INFO:
                        lg.setLevel(logging.INFO)
                        lg.propagate = False  # collected here, not shown twice
            self.users += 1
            messages: list[str] = []
            self.by_thread[threading.get_ident()] = messages
            return messages

    def stop(self) -> None:
        with self.guard:
            self.by_thread.pop(threading.get_ident(), None)
            self.users -= 1
            if self.users == 0:
                for name, (level, propagate) in zip(self._LOGGERS, self.saved, strict=True):
                    lg = logging.getLogger(name)
                    lg.removeHandler(self)
                    lg.setLevel(level)
                    lg.propagate = propagate


_GDAL_ERRORS = _GdalErrors()


@contextlib.contextmanager
def gdal_errors(path: Path) -> Iterator[None]:
    """Raise :class:`OutputError` for ``path`` if GDAL signalled an error inside the block.

    GDAL's TIFF driver reports a full disk met while flushing its block cache (at close)
    only as error messages; without this, the file would be kept as if complete. Each
    thread collects its own messages, so chip-writing threads do not mix them up.
    """
    messages = _GDAL_ERRORS.start()
    try:
        yield
    except Exception as exc:
        if messages and not isinstance(exc, GeoganError):  # GDAL's text, not "see previous"
            raise write_error(path, messages[0]) from exc
        raise
    finally:
        _GDAL_ERRORS.stop()
    if messages:
        raise write_error(path, messages[0])


def verify_raster(path: Path, final: Path | None = None) -> None:
    """Re-open a written raster and read its first and last block of every band."""
    import rasterio
    from rasterio.errors import RasterioError
    from rasterio.windows import Window

    name = final or path
    try:
        with rasterio.open(path) as ds:
            w, h = ds.width, ds.height
            bw, bh = ds.block_shapes[0] if ds.block_shapes else (w, h)
            ds.read(window=Window(0, 0, min(bw, w), min(bh, h)))
            x0, y0 = ((w - 1) // bw) * bw, ((h - 1) // bh) * bh
            ds.read(window=Window(x0, y0, w - x0, h - y0))
    except RasterioError as exc:
        raise write_error(name, f"the written file does not read back: {first_line(exc)}") \
            from exc


def is_complete_raster(path: Path) -> bool:
    """True when ``path`` opens as a raster and its first and last blocks read."""
    try:
        verify_raster(path)
    except OutputError:
        return False
    return True


# --------------------------------------------------------------------------- temporaries


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


# --------------------------------------------------------------------------- single files


def check_output_file(path: Path, overwrite: bool) -> None:
    """Fail early if ``path`` exists without ``overwrite`` or its folder cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name for the output")
    if path.exists() and not overwrite:
        raise OutputError(f"{path} already exists; pass `overwrite` to replace it")
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"{parent} is not a folder; choose another output path")
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"{probe} is not a folder; choose another output path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write to folder {probe}; choose a writable output location")


@contextlib.contextmanager
def atomic_output(path: Path, overwrite: bool = False,
                  verify: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    The temporary is renamed only after the block returned without error and, with
    ``verify``, ``verify(tmp)`` passed (e.g. :func:`verify_raster`). On any exception the
    temporary is removed, so no half-written output is left behind and an existing file
    is untouched. ``OSError`` raised inside the block becomes an :class:`OutputError`.
    """
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


def fsync_path(path: Path) -> None:
    """Flush a written file to disk (best effort on file systems that refuse)."""
    with contextlib.suppress(OSError), open(path, "rb") as fh:
        os.fsync(fh.fileno())


def current_umask() -> int:
    """The process umask, for giving temporary files the permissions of ordinary ones."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --------------------------------------------------------------------------- folders


@dataclass(frozen=True)
class FolderKind:
    """A kind of folder geogan makes, and how to tell that one is geogan's own.

    ``markers`` are relative paths of which at least one must be present; ``owned(rel)``
    says whether a file (a relative POSIX path) is one geogan writes in such a folder.
    """

    label: str
    markers: tuple[str, ...]
    owned: Callable[[PurePosixPath], bool]


def _inside(child: Path, folder: Path) -> bool:
    try:
        c, f = child.resolve(), folder.resolve()
    except OSError:
        return False
    return c == f or f in c.parents


def check_inputs_outside(folder: Path, inputs: Iterable[str | os.PathLike[str]]) -> None:
    """Refuse an output folder that holds one of ``inputs`` (it would be replaced)."""
    folder = Path(folder)
    for p in inputs:
        if _inside(Path(p), folder):
            raise InputError(f"input {p} lies inside the output folder {folder}, which would "
                              "be replaced; choose another output folder")


def check_replaceable(folder: Path, kind: FolderKind, overwrite: bool,
                      inputs: Iterable[str | os.PathLike[str]] = ()) -> None:
    """Fail unless ``folder`` may become a new ``kind`` folder.

    A missing or empty folder is fine. A non-empty one needs ``overwrite``, geogan's
    marker and nothing but files geogan writes there; the current folder (or one above
    it) and a folder holding an input are always refused.
    """
    folder = Path(folder)
    check_inputs_outside(folder, inputs)
    if not folder.exists():
        return
    if not folder.is_dir():
        raise OutputError(f"{folder} exists and is not a folder; choose another output folder")
    try:
        entries = sorted(p for p in folder.rglob("*") if not p.is_dir())
        empty = not any(folder.iterdir())
    except OSError as exc:
        raise OutputError(f"cannot read folder {folder} ({exc.strerror}); choose another "
                          "output folder") from exc
    if empty:
        return
    if _inside(Path.cwd(), folder):
        raise OutputError(f"{folder} is the current folder or holds it; geogan never replaces "
                          "it, choose a new output folder")
    if not overwrite:
        raise OutputError(f"{folder} already exists and is not empty; pass `overwrite` to "
                          "replace it")
    rels = [PurePosixPath(p.relative_to(folder).as_posix()) for p in entries]
    if not any((folder / m).exists() for m in kind.markers):
        first = rels[0] if rels else next(iter(folder.iterdir())).name
        raise OutputError(f"{folder} is not a geogan {kind.label} (it holds {first}); "
                          "refusing to replace it even with `overwrite`, choose a new or "
                          "empty folder")
    for rel in rels:
        if not kind.owned(rel) and not _TEMP_RE.match(rel.name):
            raise OutputError(f"{folder} holds {rel}, which geogan did not write; refusing to "
                              "replace it even with `overwrite`, move that file or choose "
                              "another output folder")


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
