"""``skip_existing`` with rasters beside the output (``confidence``): what a kept output lacks.

With ``skip_existing`` an output counts as done only when it and every raster asked for
beside it (:mod:`geogan.sink.side`: the confidence raster) exist and are complete. An
output that is complete but lacks one of them is kept as it is, and only what it lacks
is written: the translation runs again (the rasters beside it are computed with it) but
its sinks are just the missing rasters and their sidecars (the confidence raster's QGIS
style). That is done only where it describes the output kept: geogan made it, with this
checkpoint's generator, on the grid this translation has (the same ``bounds``/``aoi``);
otherwise the command fails, before any work, saying what to do.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geogan.errors import OutputError
from geogan.fileio import check_output_file, is_complete_raster
from geogan.inputs import GdalPath

if TYPE_CHECKING:
    from geogan.checkpoint import LoadedGenerator
    from geogan.sink.side import SideRaster
    from geogan.translate.reading import CheckedInput

log = logging.getLogger(__name__)


def missing_sides(output: Path, config: Any) -> list[SideRaster]:
    """The rasters asked for beside the complete ``output`` that do not exist; fail on one
    that exists but is not complete (left by a failed write), or where none can be written."""
    from geogan.sink import side_rasters

    missing = []
    for side in side_rasters(config):
        path = side.path_for(Path(output))
        if path.exists():
            if not is_complete_raster(path):
                raise OutputError(f"{path} exists but is not a complete raster (left by an "
                                  "interrupted or failed write); delete it and run again")
            continue
        if isinstance(output, GdalPath):
            raise OutputError(f"the {side.name} raster is written beside the output, which "
                              f"geogan does in local folders only, not at {output}; "
                              "translate to a local file")
        check_output_file(path, False)
        for extra in side.sidecars(path):
            side.check_sidecar(extra, True)  # an earlier one geogan wrote is replaced
        missing.append(side)
    return missing


def check_kept_output(output: Path, source: Path, checked: CheckedInput,
                      generator: LoadedGenerator, what: str) -> None:
    """Fail unless ``what`` (the confidence raster) written now describes ``output``: geogan
    translated ``source`` into it with this generator, on this translation's grid."""
    import rasterio

    from geogan.provenance import read_provenance, sha256_file

    with rasterio.open(output) as ds:
        made = read_provenance(ds)
        grid = (ds.crs, ds.transform, ds.width, ds.height)
    again = (f"translate it again with `overwrite` (instead of `skip_existing`) to have "
             f"its {what}, or move it away")
    if made is None:
        raise OutputError(f"{output} exists but geogan did not make it, so no {what} can be "
                          "written for it; move it away to have it translated, or drop "
                          "`confidence`")
    sha = sha256_file(generator.path) if generator.path is not None else ""
    if made.checkpoint_sha256 != sha or made.direction != generator.direction:
        raise OutputError(f"{output} was made with another checkpoint or direction "
                          f"({made.checkpoint or 'unknown'}, {made.direction or 'unknown'}), "
                          f"so a {what} written now would not describe it; {again}")
    p = checked.profile
    if grid != (p.get("crs"), p["transform"], checked.width, checked.height):
        raise OutputError(f"{output} does not lie on the grid that translating {source.name} "
                          f"gives now (other `bounds` or `aoi`?); give the options it was made "
                          f"with, or {again}")
    log.info("keeping %s: writing only its %s", output, what)
