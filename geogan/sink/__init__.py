"""Every output geogan writes, and where a translation's finished rows go.

- :mod:`.gdal`: GDAL outputs shared by translate, mosaic and tile: profiles derived
  from an input's (:func:`output_profile`), ``--co`` creation options, COG conversion,
  atomic writing (:func:`atomic_raster`, :func:`open_for_write`);
- :mod:`.rows`: the sink protocol: the engine hands each block of finished rows
  (:class:`Rows`) to every :class:`Sink` of a translation; :class:`RasterRows` writes
  them into a GDAL dataset (the writer of every format in
  :data:`geogan.contract.formats.OUTPUT_FORMATS` today, :data:`WRITERS`);
- :mod:`.side`: rasters written beside a translation (:class:`SideRaster`,
  :func:`register_side_raster`), on its grid and mask, both files or neither.
"""

import rasterio  # noqa: F401  (geogan.sink.rasterio: what tests patch to fail GDAL writes)

from geogan.sink.gdal import (
    BLOCK_SIZE,
    CreationOptions,
    atomic_raster,
    aux_path,
    check_creation_options,
    convert_to_cog,
    creation_kwargs,
    num_threads,
    open_for_write,
    output_profile,
    parse_creation_options,
)
from geogan.sink.rows import (
    WRITERS,
    GdalTarget,
    GdalWriter,
    RasterRows,
    Rows,
    Sink,
    SinkTarget,
)
from geogan.sink.side import (
    SIDE_RASTERS,
    SideRaster,
    check_side_outputs,
    register_side_raster,
    side_paths,
    side_rasters,
    translation_outputs,
)

__all__ = [
    "BLOCK_SIZE", "SIDE_RASTERS", "WRITERS", "CreationOptions", "GdalTarget", "GdalWriter",
    "RasterRows",
    "Rows", "SideRaster", "Sink", "SinkTarget", "atomic_raster", "aux_path",
    "check_creation_options", "check_side_outputs", "convert_to_cog", "creation_kwargs",
    "num_threads", "open_for_write", "output_profile", "parse_creation_options",
    "register_side_raster", "side_paths", "side_rasters", "translation_outputs",
]
