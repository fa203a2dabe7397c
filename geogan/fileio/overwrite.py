"""What ``--overwrite`` may replace, checked before anything is written.

- A file output that exists needs ``overwrite``, and its folder must be writable
  (:func:`check_output_file`).
- ``--overwrite`` replaces a folder only if geogan made it: it carries geogan's marker and
  holds nothing but geogan's own files and sub-folders, and no symbolic link
  (:class:`FolderKind`, :func:`check_replaceable`). An input inside the output, and the
  current folder (or one holding it, even empty), are always refused.
- An output file is never one that GDAL reads for an input: the input itself, a VRT's
  source, a sidecar such as ``.aux.xml``, ``.ovr`` or ``.msk`` (:func:`check_not_read`;
  :func:`geogan.rasterio_io.files_read` lists those files).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from geogan.contract import names
from geogan.errors import InputError, OutputError
from geogan.inputs import GdalOutput, GdalPath


def check_output_file(path: Path, overwrite: bool) -> None:
    """Fail early if ``path`` exists without ``overwrite`` or its folder cannot be written."""
    if isinstance(path, GdalOutput):  # only GDAL can tell; its folders need no creating
        zip_file = path.local_zip()
        if zip_file is not None and not zip_file.parent.is_dir():
            raise OutputError(f"folder {zip_file.parent} does not exist; create it first, or "
                              "give a zip file in an existing folder")
        if path.exists():
            if path.startswith("/vsizip/"):
                raise OutputError(f"{path} already exists, and GDAL cannot replace a file "
                                  "inside a zip; give another name or another zip")
            if not overwrite:
                raise OutputError(f"{path} already exists; pass `overwrite` to replace it")
        return
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


def _identity(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """``(device, inode)`` of an existing local file (links and other spellings agree)."""
    if isinstance(path, GdalPath):
        return None
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def check_not_read(outputs: Iterable[str | os.PathLike[str]],
                   reads: Mapping[str | os.PathLike[str], Iterable[str | os.PathLike[str]]]
                   ) -> None:
    """Refuse an output that is one of the files read for an input, even with ``overwrite``.

    ``reads`` maps each input to the files GDAL reads for it (the input itself, a VRT's
    sources, sidecars: :func:`geogan.rasterio_io.files_read`). Files are compared as files
    (device and inode), so a symbolic link or another spelling of a path is caught too.
    """
    read_by: dict[tuple[int, int], str | os.PathLike[str]] = {}
    for source, files in reads.items():
        for f in (source, *files):
            key = _identity(f)
            if key is not None:
                read_by.setdefault(key, source)
    for out in outputs:
        key = _identity(out)
        if key is None or key not in read_by:
            continue
        source = read_by[key]
        if _identity(source) == key:
            raise OutputError(f"output {out} would replace its input; choose another output")
        raise OutputError(f"output {out} would replace a file that input {source} reads (a "
                          "VRT's source or a sidecar); choose another output")


@dataclass(frozen=True)
class FolderKind:
    """A kind of folder geogan makes, and how to tell that one is geogan's own.

    ``markers`` are relative paths of which at least one must be present; ``owned(rel)``
    says whether a file (a relative POSIX path) is one geogan writes in such a folder, and
    ``owned_dir(rel)`` whether a sub-folder is one geogan makes there (none by default).
    """

    label: str
    markers: tuple[str, ...]
    owned: Callable[[PurePosixPath], bool]
    owned_dir: Callable[[PurePosixPath], bool] = lambda rel: False


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
    if folder.exists() and _inside(Path.cwd(), folder):
        raise OutputError(f"{folder} is the current folder or holds it; geogan never writes an "
                          "output folder there, choose a new output folder")
    if not folder.exists():
        return
    if not folder.is_dir():
        raise OutputError(f"{folder} exists and is not a folder; choose another output folder")
    try:
        files, dirs, links = _contents(folder)
    except OSError as exc:
        raise OutputError(f"cannot read folder {folder} ({exc.strerror}); choose another "
                          "output folder") from exc
    if not (files or dirs or links):
        return
    if not overwrite:
        raise OutputError(f"{folder} already exists and is not empty; pass `overwrite` to "
                          "replace it")
    if not any((folder / m).is_file() for m in kind.markers):
        first = (files or dirs or links)[0]
        raise OutputError(f"{folder} is not a geogan {kind.label} (it holds {first}); "
                          "refusing to replace it even with `overwrite`, choose a new or "
                          "empty folder")
    _check_all_owned(folder, kind, files, dirs, links)


def _geogan_temporary(name: str) -> bool:
    """A hidden temporary or a lock file that geogan writes beside any output."""
    return names.TEMP_RE.match(name) is not None or names.is_lock_name(name)


def _contents(folder: Path) -> tuple[list[PurePosixPath], list[PurePosixPath],
                                     list[PurePosixPath]]:
    """The files, sub-folders and symbolic links under ``folder`` (relative, sorted);
    geogan's lock files are left out. Links are not followed."""
    files, dirs, links = [], [], []

    def fail(exc: OSError) -> None:
        raise exc

    for top, subdirs, filenames in os.walk(folder, onerror=fail):
        base = PurePosixPath(Path(top).relative_to(folder).as_posix())
        for name in subdirs:
            (links if os.path.islink(os.path.join(top, name)) else dirs).append(base / name)
        for name in filenames:
            if os.path.islink(os.path.join(top, name)):
                links.append(base / name)
            elif not names.is_lock_name(name):
                files.append(base / name)
    return sorted(files), sorted(dirs), sorted(links)


def _check_all_owned(folder: Path, kind: FolderKind, files: list[PurePosixPath],
                     dirs: list[PurePosixPath], links: list[PurePosixPath]) -> None:
    """Refuse a folder holding anything geogan does not write there."""
    tail = "refusing to replace it even with `overwrite`, move it or choose another output folder"
    if links:
        raise OutputError(f"{folder} holds {links[0]}, a symbolic link, which geogan never "
                          f"makes; {tail}")
    for rel in dirs:
        if not kind.owned_dir(rel) and not _geogan_temporary(rel.name):
            raise OutputError(f"{folder} holds the folder {rel}, which geogan did not make; "
                              f"{tail}")
    for rel in files:
        if not kind.owned(rel) and not _geogan_temporary(rel.name):
            raise OutputError(f"{folder} holds {rel}, which geogan did not write; {tail}")
