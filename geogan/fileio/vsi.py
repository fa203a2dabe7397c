"""Outputs at GDAL paths (``/vsizip/``, ``/vsimem/``, ``/vsis3/``...), as atomic as each allows.

An output there is written as a local temporary in a private folder of the system's
temporary folder (``TMPDIR``), checked, and only then put in place:

- into a zip on the local disk (``/vsizip/out.zip/a.tif``) by Python's zipfile, on a copy
  of the zip beside it that is checked through GDAL and renamed onto it: a failure leaves
  the zip as it was. Members are stored, not deflated (a GeoTIFF is already compressed, and
  GDAL reads stored members by ranges). A member is never replaced;
- anywhere else by GDAL (``rasterio.shutil.copyfiles``: the raster and its sidecars), then
  read back. A failed copy to a new name is deleted; one over an existing file
  (``overwrite``) is left to the file system, which keeps the old object where an upload
  is atomic (object stores) and may not elsewhere.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

from geogan.errors import OutputError
from geogan.fileio.errors import gdal_errors, write_error
from geogan.fileio.faults import fault_point
from geogan.fileio.overwrite import check_output_file
from geogan.fileio.temp import check_written, fsync_path, temp_path
from geogan.inputs import GdalOutput

log = logging.getLogger(__name__)


@contextlib.contextmanager
def gdal_output(path: GdalOutput, overwrite: bool,
                verify: Callable[[Path], None] | None) -> Iterator[Path]:
    """:func:`~geogan.fileio.atomic_output` for a GDAL path: yield a local temporary."""
    check_output_file(path, overwrite)
    folder = Path(tempfile.mkdtemp(prefix=".geogan-"))
    tmp = folder / (path.name or "output.tif")
    try:
        try:
            yield tmp
        except OSError as exc:
            raise write_error(path, exc) from exc
        check_written(tmp, path, overwrite, verify)  # type: ignore[arg-type]
        zip_file = path.local_zip()
        if zip_file is not None:
            _add_to_zip(folder, path, zip_file, verify)
        else:
            _copy_with_gdal(tmp, path, overwrite, verify)
        fault_point("after-rename", path)
        log.debug("wrote %s", path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _member_folder(path: GdalOutput, zip_file: Path) -> str:
    """``/vsizip/x/out.zip/sub/a.tif`` -> ``"sub/"``: where in the zip the files go."""
    inner = path[len("/vsizip/"):]
    rest = inner[len(str(zip_file)):].strip("/")
    return rest.rsplit("/", 1)[0] + "/" if "/" in rest else ""


def _add_to_zip(folder: Path, path: GdalOutput, zip_file: Path,
                verify: Callable[[Path], None] | None) -> None:
    """Add the files of ``folder`` to ``zip_file`` by way of a checked copy renamed onto it."""
    inside = _member_folder(path, zip_file)
    part = temp_path(zip_file)
    try:
        try:
            if zip_file.exists():
                shutil.copyfile(zip_file, part)
            with zipfile.ZipFile(part, "a", compression=zipfile.ZIP_STORED) as zf:
                for f in sorted(folder.iterdir()):
                    zf.write(f, inside + f.name)
            fsync_path(part)
        except zipfile.BadZipFile as exc:
            raise OutputError(f"{zip_file} is not a zip file; give a new zip or one geogan "
                              "can add to") from exc
        except OSError as exc:
            raise write_error(path, exc) from exc
        if verify is not None:
            verify(GdalOutput(f"/vsizip/{part}/{inside}{path.name}"))  # type: ignore[arg-type]
        try:
            os.replace(part, zip_file)
        except OSError as exc:
            raise write_error(path, exc) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            part.unlink(missing_ok=True)
        raise


def _copy_with_gdal(tmp: Path, path: GdalOutput, overwrite: bool,
                    verify: Callable[[Path], None] | None) -> None:
    """Copy the raster ``tmp`` (and its sidecars) to ``path`` with GDAL; read it back."""
    import rasterio.shutil
    from rasterio.errors import RasterioError

    # over an existing file a failed copy is not deleted: it may be the old file (without
    # overwrite, check_written has just seen that nothing is there)
    existed = overwrite and path.exists()
    try:
        try:
            with gdal_errors(path):
                rasterio.shutil.copyfiles(str(tmp), str(path))
        except RasterioError as exc:
            raise write_error(path, exc.__cause__ or exc) from exc
        if verify is not None:
            verify(path)  # type: ignore[arg-type]
    except BaseException:
        if not existed:
            with contextlib.suppress(Exception):
                rasterio.shutil.delete(str(path))
        raise
