"""Input lists shared by every command: files, folders, globs, ``--files-from`` lists.

``/vsi...`` paths (``/vsizip/``, ``/vsicurl/``, ``/vsis3/``...) and URLs (``https://...``)
are passed to GDAL as they are, as strings: a ``Path`` would fold their double slashes.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from geogan.errors import InputError

#: File name endings taken from an input folder.
RASTER_SUFFIXES: tuple[str, ...] = (".tif", ".tiff", ".vrt", ".img", ".jp2")

_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")



class GdalPath(str):
    """A ``/vsi...`` path or URL kept verbatim, with the few ``Path`` members geogan uses.

    Only GDAL can tell whether it exists: it is opened as it is, and errors come from GDAL.
    """

    @property
    def name(self) -> str:
        return self.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]

    @property
    def stem(self) -> str:
        name = self.name
        return name.rsplit(".", 1)[0] if "." in name else name

    @property
    def suffix(self) -> str:
        name = self.name
        return "." + name.rsplit(".", 1)[1] if "." in name else ""

    def exists(self) -> bool:
        return True

    def is_dir(self) -> bool:
        return False

    def is_file(self) -> bool:
        return True

    def resolve(self) -> GdalPath:
        return self

    def __truediv__(self, name: str) -> GdalPath:
        return type(self)(self.rstrip("/") + "/" + str(name))


class GdalOutput(GdalPath):
    """An output at a ``/vsi...`` path that GDAL can write (:data:`WRITABLE_PREFIXES`).

    geogan writes it as a local temporary first and copies it there once complete
    (:func:`geogan.fileio.atomic_output`). Unlike an input, whether it exists is asked
    of GDAL: a raster there exists, and so does a file GDAL says it cannot read as one.
    """

    def exists(self) -> bool:
        """Asked of GDAL; a path it cannot reach (credentials, network) is an error."""
        import rasterio
        from rasterio.errors import RasterioIOError

        try:
            with rasterio.open(self):
                return True
        except RasterioIOError as exc:
            text = str(exc)
            if "not recognized as being in a supported file format" in text:
                return True  # a file that is not a raster
            if any(m in text for m in _MISSING):
                return False
            from geogan.errors import OutputError

            raise OutputError(f"cannot reach {self}: {text.splitlines()[0] if text else exc!r}; "
                              "check the path and the credentials GDAL needs for it") from exc

    def is_dir(self) -> bool:
        """A folder to write into: a path ending in "/", or a zip file (``/vsizip/x.zip``)."""
        return self.endswith("/") or (self.startswith("/vsizip/")
                                      and self.suffix.lower() == ".zip")

    def is_file(self) -> bool:
        return not self.is_dir() and self.exists()

    def local_zip(self) -> Path | None:
        """The zip file on the local disk that a ``/vsizip/`` path writes into, if any."""
        if not self.startswith("/vsizip/") or self.startswith("/vsizip//vsi"):
            return None
        inner = self[len("/vsizip/"):]
        end = inner.lower().find(".zip")
        return Path(inner[:end + 4]) if end >= 0 else None


#: What GDAL says of a path where nothing is.
_MISSING: tuple[str, ...] = ("does not exist in the file system", "No such file or directory",
                             "HTTP response code: 404", "Not Found")

#: GDAL virtual file systems that can write a new file (sequentially, which is all geogan
#: needs: the output is written locally and copied there in one pass).
WRITABLE_PREFIXES: tuple[str, ...] = ("/vsimem/", "/vsizip/", "/vsigzip/", "/vsis3/",
                                      "/vsigs/", "/vsiaz/", "/vsiadls/", "/vsioss/",
                                      "/vsiswift/", "/vsiwebhdfs/")


def as_output(item: str | os.PathLike[str], option: str = "-o") -> Path | GdalOutput:
    """An output path: a ``Path``, or a :class:`GdalOutput` for a writable ``/vsi...`` path.

    URLs and read-only virtual file systems (``/vsicurl/``, ``/vsitar/``...) are refused.
    """
    if isinstance(item, (GdalOutput, Path)):
        return item
    text = os.fspath(item)
    if not is_gdal_path(text):
        return Path(text)
    if text.startswith(WRITABLE_PREFIXES) and text.rstrip("/").count("/") >= 2:
        return GdalOutput(text)
    raise InputError(f"{option} {text}: GDAL cannot write there; give a local path or a "
                     f"writable GDAL path ({', '.join(p + '...' for p in WRITABLE_PREFIXES[:4])})")


#: An input: a local path, or a GDAL path (``/vsi...``, URL) kept as a string.
InputPath = Path | GdalPath


def is_gdal_path(item: str | os.PathLike[str]) -> bool:
    """True for ``/vsi...`` paths and URLs, which only GDAL can tell exist."""
    text = os.fspath(item)
    return text.startswith("/vsi") or bool(_URL_RE.match(text))


def as_input(item: str | os.PathLike[str]) -> InputPath:
    """A GDAL path stays a string; anything else becomes a ``Path``."""
    if isinstance(item, (GdalPath, Path)):
        return item
    text = os.fspath(item)
    if not is_gdal_path(text):
        return Path(text)
    if text.startswith(("http://", "https://", "ftp://")):
        text = "/vsicurl/" + text  # what GDAL needs to read a URL by ranges
    return GdalPath(text)


def read_files_from(path: str | os.PathLike[str], option: str = "`files_from`",
                    relative_to_list: bool = False) -> list[str]:
    """The paths listed in a text file, one per line (blank lines and ``#`` comments skipped).

    Relative paths are taken from the current folder, or from the list's own folder with
    ``relative_to_list``.
    """
    p = Path(path)
    try:
        lines = p.read_text().splitlines()
    except OSError as exc:
        raise InputError(f"{option} {p} cannot be read ({exc.strerror}); give a text file "
                         "with one path per line") from exc
    items = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    if not items:
        raise InputError(f"{option} {p} lists no path; give one path per line")
    if relative_to_list:
        items = [i if Path(i).is_absolute() or is_gdal_path(i) else str(p.parent / i)
                 for i in items]
    return items


def expand_inputs(inputs: Iterable[str | os.PathLike[str]], *,
                  files_from: str | os.PathLike[str] | None = None,
                  suffixes: Sequence[str] = RASTER_SUFFIXES,
                  what: str = "rasters") -> list[InputPath]:
    """Files, folders (their ``suffixes`` files, not recursive), globs, ``--files-from`` lists
    and GDAL paths -> a list without duplicates, in order.

    Hidden files (names starting with ".") in folders are ignored, which also keeps
    geogan's own temporary outputs out.
    """
    items = [*inputs, *(read_files_from(files_from) if files_from is not None else [])]
    found_all: list[InputPath] = []
    for item in items:
        text = os.fspath(item)
        if is_gdal_path(text):
            found_all.append(as_input(text))
            continue
        p = Path(text)
        if p.is_dir():
            found: list[InputPath] = sorted(
                f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")
                and f.suffix.lower() in suffixes)
            if not found:
                raise InputError(f"folder {p} holds no {what} ({', '.join(suffixes)}); "
                                 "check the path")
        elif p.exists():
            found = [p]
        elif any(ch in text for ch in "*?["):
            found = sorted(Path(f) for f in glob.glob(text, recursive=True) if Path(f).is_file())
            if not found:
                raise InputError(f"no files match {text}; check the pattern")
        else:
            raise InputError(f"{p} does not exist; check the path")
        found_all.extend(found)
    seen: set[str] = set()
    unique: list[InputPath] = []
    for f in found_all:
        key = f if isinstance(f, GdalPath) else str(f.resolve())
        if key not in seen:
            seen.add(key)
            unique.append(f)
    if not unique:
        raise InputError(f"no input {what} given; pass files, folders or globs")
    return unique
