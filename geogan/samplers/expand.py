"""Which ``--a``/``--b`` inputs are chip folders and which rasters, and raster files, globs
and ``@LIST`` files expanded to the files they name."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from geogan.datasets import PICTURE_SUFFIXES
from geogan.errors import InputError
from geogan.inputs import read_files_from


def is_chip_folder(path: Path) -> bool:
    """Whether ``--a``/``--b`` ``path`` is read as chips (exactly as before rasters came).

    A folder is chips: the output of ``geogan tile`` (``index.gpkg``, chip-named files,
    ``A/``/``B/``), a folder of PNG/JPEG images, or any other folder of GeoTIFFs.
    Rasters are given as files, globs (``"2009/*.tif"``), VRTs or a list file.
    """
    return Path(path).is_dir()


def expand_rasters(items: Iterable[str | os.PathLike[str]], option: str) -> list[Path]:
    """Raster files, globs (expanded, sorted) and ``@LIST`` files -> existing files, in order.

    ``@list.txt`` reads one path or glob per line (blank lines and ``#`` comments
    skipped). Duplicates are dropped.
    """
    files: list[Path] = []
    for item in items:
        text = str(item)
        if text.startswith("@"):
            listed = read_files_from(Path(text[1:]), f"{option} list", relative_to_list=True)
            files.extend(expand_rasters(listed, option))
            continue
        p = Path(text)
        if p.is_dir():
            raise InputError(f"{option} {p} is a folder, which is read as chips; to train from "
                             f"the rasters in it, pass {p / '*.tif'} (a glob) or the files")
        if p.exists():
            files.append(p)
        elif any(ch in text for ch in "*?["):
            found = sorted(Path(f) for f in glob.glob(text, recursive=True) if Path(f).is_file()
                           and Path(f).suffix.lower() not in PICTURE_SUFFIXES)
            if not found:
                raise InputError(f"{option}: no files match {text}; check the pattern")
            files.extend(found)
        else:
            raise InputError(f"{option} {p} does not exist; check the path")
    seen: set[Path] = set()
    unique = []
    for f in files:
        if f.resolve() not in seen:
            seen.add(f.resolve())
            unique.append(f)
    return unique


def as_inputs(value: Path | str | Sequence[Path | str] | None) -> tuple[Path, ...]:
    """A config's ``a``/``b`` (one path or several) as a tuple of paths."""
    if value is None:
        return ()
    if isinstance(value, (str, os.PathLike)):
        return (Path(value),)
    return tuple(Path(v) for v in value)
