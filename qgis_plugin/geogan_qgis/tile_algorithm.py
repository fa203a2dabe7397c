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
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingUtils,
)

from .algorithm import GeoganAlgorithm, as_path
from .jobs import INDEX_NAME, tile_job


class TileRasterAlgorithm(GeoganAlgorithm):
    """A raster -> a folder of chip GeoTIFFs and their index (a polygon layer)."""

    INPUT = "INPUT"
    SIZE = "SIZE"
    OVERLAP = "OVERLAP"
    AOI = "AOI"
    MAX_NODATA = "MAX_NODATA"
    MIN_STD = "MIN_STD"
    OVERWRITE = "OVERWRITE"
    OUTPUT = "OUTPUT"
    INDEX = "INDEX"
    CHIPS = "CHIPS"

    def name(self) -> str:
        return "tile"

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return self.tr("Tile raster")

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return self.tr(
            "Cuts a raster into square georeferenced chips (GeoTIFFs keeping the CRS and "
            "exact transform) for training, and writes their footprints to index.gpkg in the "
            "chip folder, loaded as a layer.\n\n"
            "Chips mostly nodata or flat are skipped. An optional polygon layer limits chips "
            "to an area of interest. A non-empty output folder is replaced only when "
            "'Replace a non-empty output folder' is checked.")

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.INPUT, self.tr("Input raster")))
        self.addParameter(QgsProcessingParameterNumber(
            self.SIZE, self.tr("Chip size (pixels)"), QgsProcessingParameterNumber.Integer,
            256, minValue=8, maxValue=8192))
        self.addParameter(QgsProcessingParameterNumber(
            self.OVERLAP, self.tr("Chip overlap (pixels)"), QgsProcessingParameterNumber.Integer,
            0, minValue=0, maxValue=4096))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.AOI, self.tr("Area of interest (polygons)"),
            [QgsProcessing.TypeVectorPolygon], optional=True))
        max_nodata = QgsProcessingParameterNumber(
            self.MAX_NODATA, self.tr("Largest nodata fraction of a kept chip (0 to 1)"),
            QgsProcessingParameterNumber.Double, 0.0, minValue=0.0, maxValue=1.0)
        min_std = QgsProcessingParameterNumber(
            self.MIN_STD, self.tr("Smallest band standard deviation of a kept chip"),
            QgsProcessingParameterNumber.Double, 0.0, minValue=0.0)
        for parameter in (max_nodata, min_std):
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(parameter)
        self.addParameter(QgsProcessingParameterBoolean(
            self.OVERWRITE, self.tr("Replace a non-empty output folder"), False))
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
        job = tile_job(as_path(source), outdir,
                       size=self.parameterAsInt(parameters, self.SIZE, context),
                       overlap=self.parameterAsInt(parameters, self.OVERLAP, context),
                       aoi=aoi,
                       max_nodata=self.parameterAsDouble(parameters, self.MAX_NODATA, context),
                       min_std=self.parameterAsDouble(parameters, self.MIN_STD, context),
                       overwrite=self.parameterAsBoolean(parameters, self.OVERWRITE, context))
        result = self.run_job(job, feedback)
        index = outdir / INDEX_NAME
        chips = getattr(result, "chips", None)
        if chips is None:  # external run: count the chips it wrote
            chips = sum(1 for p in outdir.rglob("*.tif") if not p.name.startswith("."))
        feedback.pushInfo(f"{chips} chip(s) in {outdir}; index {index}")
        if index.is_file():
            context.addLayerToLoadOnCompletion(str(index), QgsProcessingContext.LayerDetails(
                self.tr("Tile index"), context.project(), self.INDEX,
                QgsProcessingUtils.LayerHint.Vector))
        return {self.OUTPUT: str(outdir), self.INDEX: str(index), self.CHIPS: chips}
