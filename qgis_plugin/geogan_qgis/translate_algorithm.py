"""Processing algorithm: translate a raster through a geogan checkpoint."""

from __future__ import annotations

import os
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputRasterLayer,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from .algorithm import GeoganAlgorithm, as_path
from .contract.names import CONFIDENCE_SUFFIX, RUN_CHECKPOINT_NAME
from .contract.options import TRANSLATE
from .jobs import check_translate_input, parse_bands, translate_job
from .params import choice_value, option_value, parameter

#: The translate options the dialog shows, in order: each one's parameter (key, label, type,
#: default, choices) comes from its entry in geogan.contract.options.TRANSLATE and its value goes
#: to ``translate_job`` by its name, so a name added here is all it takes. The area of
#: interest, a polygon layer, comes after them.
SHOWN = ("direction", "tile", "overlap", "norm", "stats", "batch_size", "device", "bands",
         "band_names", "at_model_resolution", "blend", "precision", "cog", "compress",
         "confidence", "palette")
#: Those of SHOWN under the dialog's "Advanced" heading.
ADVANCED = ("blend", "precision", "cog", "compress", "confidence")
#: File dialog filters of SHOWN's path options.
FILE_FILTERS = {"stats": "geogan statistics (*.json);;All files (*.*)"}


class CheckpointParameter(QgsProcessingParameterFile):
    """A checkpoint file, or a training run folder that holds ``model.safetensors``.

    QGIS's file parameter takes files or folders, not both; a run folder works wherever
    geogan takes a checkpoint, so this one accepts both.
    """

    def __init__(self, name: str, description: str) -> None:
        super().__init__(name, description, QgsProcessingParameterFile.File,
                         fileFilter="geogan checkpoints (*.safetensors);;All files (*.*)")

    def clone(self) -> CheckpointParameter:
        copy = CheckpointParameter(self.name(), self.description())
        copy.setFlags(self.flags())
        return copy

    def checkValueIsAcceptable(self, value: Any, context: Any = None) -> bool:  # noqa: N802
        if isinstance(value, str) and os.path.isdir(value):
            return os.path.isfile(os.path.join(value, RUN_CHECKPOINT_NAME))
        return super().checkValueIsAcceptable(value, context)


class TranslateRasterAlgorithm(GeoganAlgorithm):
    """A raster and a checkpoint -> a translated GeoTIFF with the same CRS, transform and size."""

    INPUT = "INPUT"
    CHECKPOINT = "CHECKPOINT"
    BANDS = "BANDS"
    AOI = "AOI"
    OUTPUT = "OUTPUT"
    CONFIDENCE = "CONFIDENCE"
    STACK = "STACK"

    def name(self) -> str:
        return "translate"

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return self.tr("Translate raster")

    def help_text(self) -> str:
        return self.tr(
            "Translates a whole raster through a geogan checkpoint (CycleGAN, CUT or pix2pix "
            "generator), in overlapping windows blended without seams. The output GeoTIFF "
            "has the input's CRS, transform, size and nodata mask.\n\n"
            "Checkpoint: a .safetensors file written by 'geogan train' (or its run folder). "
            "The input must have the band count of the checkpoint's source domain.\n"
            "Rasters stacked with the input: for a model trained on a stack (train "
            "--a-stack), the other rasters in training's order; they are resampled onto the "
            "input's grid.\n"
            "Direction: a2b translates domain A to B; b2a the reverse (CycleGAN only).\n"
            "Tile and overlap: window size and overlap in pixels; larger overlap hides seams.\n"
            "Normalisation statistics: global (the whole raster's, so the result does not "
            "depend on the tile size), dense (a smooth grid over the raster) or window (each "
            "window its own, as in training).\n"
            "Statistics file: optional .stats.json written by 'geogan translate --save-stats', "
            "to give several rasters the same look.\n"
            "Device: auto uses a GPU when the geogan environment has one.\n"
            "Output band names: e.g. red,green,blue, written as band descriptions; colour "
            "names also set the colour interpretation (empty: the names the checkpoint "
            "records).\n"
            "Area of interest: an optional polygon layer; only the block of the input it "
            "covers is translated, on the input's grid, and pixels outside the polygons "
            "are nodata.\n"
            "Translate at the model's ground resolution: read the input at the pixel size "
            "the model learned, translate, and resample the result back onto the input's "
            "grid (the log warns when the two resolutions differ much).\n"
            "The output says in its metadata that it is synthetic and which model made it.\n"
            "Advanced: how overlapping windows are blended (cosine, linear, none), the "
            "numeric precision, a Cloud Optimized GeoTIFF with overviews, the GeoTIFF "
            "compression, and a confidence raster beside the output (<output>.confidence.tif, "
            "loaded with the output: 1 = the model is sure, green; 0 = it is guessing, red).")

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.INPUT, self.tr("Input raster")))
        self.addParameter(CheckpointParameter(
            self.CHECKPOINT, self.tr("Checkpoint (.safetensors or a training run folder)")))
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.STACK, self.tr(TRANSLATE["stack"].label),
            QgsProcessing.TypeRaster, optional=True))
        for name in SHOWN:
            self.addParameter(parameter(TRANSLATE[name], advanced=name in ADVANCED,
                                        file_filter=self.tr(FILE_FILTERS.get(name, ""))))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.AOI, self.tr(TRANSLATE["aoi"].label), [QgsProcessing.TypeVectorPolygon],
            optional=True))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT, self.tr("Translated")))
        self.addOutput(QgsProcessingOutputRasterLayer(self.CONFIDENCE, self.tr("Confidence")))

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        source = self.raster_path(layer, self.INPUT)
        checkpoint = as_path(self.parameterAsFile(parameters, self.CHECKPOINT, context))
        direction = choice_value(self, parameters, TRANSLATE["direction"])
        bands = self.checked(parse_bands,
                             self.parameterAsString(parameters, self.BANDS, context))
        stack = self.parameterAsLayerList(parameters, self.STACK, context) or []
        stack_paths = tuple(as_path(self.raster_path(x, self.STACK)) for x in stack)
        info = self.checked(check_translate_input, checkpoint, direction, source,
                            len(bands) if bands else self.data_band_count(layer),
                            [(p.name, self.data_band_count(x))
                             for p, x in zip(stack_paths, stack, strict=True)])
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        values = {name: option_value(self, parameters, TRANSLATE[name], context)
                  for name in SHOWN}
        colours = info.map_colours(direction)
        paletted = colours and (values["palette"] == "on" or (
            values["palette"] == "auto" and not values["at_model_resolution"]))
        feedback.pushInfo(f"checkpoint {info.path}: {info.input_bands(direction)} band(s) in, "
                          f"{info.output_bands(direction)} out"
                          + (f", a map of {colours} colours written as one band of colour "
                             "indices with its colour table" if paletted else ""))
        values.update(direction=direction, bands=bands,
                      stack=stack_paths or None)
        if parameters.get(self.AOI) is not None:
            aoi = self.parameterAsCompatibleSourceLayerPath(
                parameters, self.AOI, context, ["gpkg", "shp", "geojson", "fgb"], "gpkg",
                feedback)
            values["aoi"] = as_path(aoi) if aoi else None
        job = translate_job(info.path, as_path(source), as_path(output), overwrite=True,
                            **values)
        self.run_job(job, feedback)
        results = {self.OUTPUT: output}
        confidence = os.path.splitext(output)[0] + CONFIDENCE_SUFFIX
        if values.get("confidence") and os.path.isfile(confidence):
            # QGIS applies the .qml of the same name (red: guessing, green: sure) on loading
            context.addLayerToLoadOnCompletion(confidence, QgsProcessingContext.LayerDetails(
                self.tr("Confidence"), context.project(), self.CONFIDENCE))
            results[self.CONFIDENCE] = confidence
        return results
