"""Processing algorithm: cut a raster into georeferenced chips with a tile index."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingUtils,
)

from .algorithm import GeoganAlgorithm, as_path
from .contract import names
from .contract.options import TILE
from .jobs import parse_bands, tile_job
from .params import option_value, parameter

#: The tile options the dialog shows, in order (their parameters come from the contract); the
#: area of interest, a polygon layer, comes after the first three.
SHOWN = ("size", "overlap", "bands", "max_nodata", "min_std", "overwrite")
#: Those of SHOWN under the dialog's "Advanced" heading.
ADVANCED = ("max_nodata", "min_std")


class TileRasterAlgorithm(GeoganAlgorithm):
    """A raster -> a folder of chip GeoTIFFs and their index (a polygon layer)."""

    INPUT = "INPUT"
    BANDS = "BANDS"
    AOI = "AOI"
    OUTPUT = "OUTPUT"
    INDEX = "INDEX"
    CHIPS = "CHIPS"

    def name(self) -> str:
        return "tile"

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return self.tr("Tile raster")

    def help_text(self) -> str:
        return self.tr(
            "Cuts a raster into square georeferenced chips (GeoTIFFs keeping the CRS and "
            "exact transform) for training, and writes their footprints to index.gpkg in the "
            "chip folder, loaded as a layer.\n\n"
            "Bands: the bands to keep, e.g. 1,2,3 (empty: all). "
            "Chips mostly nodata or flat are skipped. An optional polygon layer limits chips "
            "to an area of interest. A non-empty output folder is replaced only when "
            "'Replace a non-empty output folder' is checked.")

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.INPUT, self.tr("Input raster")))
        for name in SHOWN[:3]:
            self.addParameter(parameter(TILE[name]))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.AOI, self.tr(TILE["aoi"].label), [QgsProcessing.TypeVectorPolygon],
            optional=True))
        for name in SHOWN[3:]:
            self.addParameter(parameter(TILE[name], advanced=name in ADVANCED))
        self.addParameter(QgsProcessingParameterFolderDestination(
            self.OUTPUT, self.tr("Chip folder")))
        self.addOutput(QgsProcessingOutputVectorLayer(
            self.INDEX, self.tr("Tile index"), QgsProcessing.TypeVectorPolygon))
        self.addOutput(QgsProcessingOutputNumber(self.CHIPS, self.tr("Number of chips")))

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        source = self.raster_path(layer, self.INPUT)
        aoi: Path | None = None
        if parameters.get(self.AOI) is not None:
            aoi_path = self.parameterAsCompatibleSourceLayerPath(
                parameters, self.AOI, context, ["gpkg", "shp", "geojson", "fgb"], "gpkg",
                feedback)
            aoi = as_path(aoi_path) if aoi_path else None
        outdir = as_path(self.parameterAsString(parameters, self.OUTPUT, context))
        values = {name: option_value(self, parameters, TILE[name], context) for name in SHOWN}
        values["bands"] = self.checked(parse_bands, values["bands"])
        job = tile_job(as_path(source), outdir, aoi=aoi, **values)
        result = self.run_job(job, feedback)
        index = outdir / names.INDEX_NAME
        chips = getattr(result, "chips", None)
        if chips is None:  # external run: count the chips it wrote
            chips = sum(1 for p in outdir.rglob("*.tif") if not p.name.startswith("."))
        feedback.pushInfo(f"{chips} chip(s) in {outdir}; index {index}")
        if index.is_file():
            context.addLayerToLoadOnCompletion(str(index), QgsProcessingContext.LayerDetails(
                self.tr("Tile index"), context.project(), self.INDEX,
                QgsProcessingUtils.LayerHint.Vector))
        return {self.OUTPUT: str(outdir), self.INDEX: str(index), self.CHIPS: chips}
