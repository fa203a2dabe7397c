"""Processing algorithm: train a CycleGAN, pix2pix or CUT model from rasters or chip folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
)

from .algorithm import GeoganAlgorithm, as_path
from .contract.names import RUN_CHECKPOINT_NAME
from .contract.options import TRAIN
from .jobs import train_job
from .params import option_value, parameter

#: The train options the dialog shows, in order (their parameters come from the contract).
SHOWN = ("model", "epochs", "batch_size", "crop", "device", "resume", "overwrite",
         "max_steps", "generator", "ngf", "upsample", "lr", "max_nodata", "min_std",
         "direction")
#: Those of SHOWN under the dialog's "Advanced" heading.
ADVANCED = ("max_steps", "generator", "ngf", "upsample", "lr", "max_nodata", "min_std",
            "direction")


class TrainAlgorithm(GeoganAlgorithm):
    """Rasters or chip folders -> a run folder with a self-describing checkpoint."""

    A = "A"
    B = "B"
    A_RASTERS = "A_RASTERS"
    B_RASTERS = "B_RASTERS"
    A_STACK = "A_STACK"
    B_STACK = "B_STACK"
    AOI = "AOI"
    OUTPUT = "OUTPUT"
    CHECKPOINT = "CHECKPOINT"

    def name(self) -> str:
        return "train"

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return self.tr("Train")

    def help_text(self) -> str:
        return self.tr(
            "Trains a generator that translates domain A into domain B, straight from "
            "rasters or from chip folders written by 'Tile raster'.\n\n"
            "Rasters: pick the rasters of each domain; training reads random windows of the "
            "crop size spread over their valid ground (no chips are written), optionally "
            "only inside the area-of-interest polygons, skipping windows with too much "
            "nodata or too little contrast. For pix2pix each A window is read from the B "
            "rasters over the same ground.\n\n"
            "Stacked rasters: more rasters read with each domain's rasters as one input "
            "(a SAR image with an older optical one, say), their bands after its bands, "
            "resampled onto its grid; a pixel counts as valid only where every raster of "
            "the stack has data. Translate such a model with the same rasters, in the same "
            "order, as 'Rasters stacked with the input'.\n\n"
            "Chip folders: CycleGAN learns from unpaired chip folders (and also gives B to "
            "A); pix2pix needs chips paired by file name (or one folder with A/ and B/ from "
            "'geogan tile --pair', given as domain A); CUT and FastCUT learn from unpaired "
            "data with one generator (A to B only) and train faster than CycleGAN. "
            "Upsampling 'resize' avoids checkerboard artefacts.\n\n"
            "The run folder receives model.safetensors (the checkpoint for 'Translate "
            "raster', with its JSON metadata), losses.csv, a loss plot and previews.\n\n"
            "Training is long: follow the progress bar and log. Cancel stops it after the "
            "current step and saves a checkpoint; run again with 'Continue the run' to "
            "resume it.")

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.A_RASTERS, self.tr("Domain A rasters (or give a chip folder below)"),
            QgsProcessing.TypeRaster, optional=True))
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.B_RASTERS, self.tr("Domain B rasters"), QgsProcessing.TypeRaster,
            optional=True))
        for key, name in ((self.A_STACK, "a_stack"), (self.B_STACK, "b_stack")):
            self.addParameter(QgsProcessingParameterMultipleLayers(
                key, self.tr(TRAIN[name].label), QgsProcessing.TypeRaster, optional=True))
        self.addParameter(QgsProcessingParameterFile(
            self.A, self.tr("Domain A chip folder"), QgsProcessingParameterFile.Folder,
            optional=True))
        self.addParameter(QgsProcessingParameterFile(
            self.B, self.tr("Domain B chip folder"), QgsProcessingParameterFile.Folder,
            optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.AOI, self.tr(TRAIN["aoi"].label),
            [QgsProcessing.TypeVectorPolygon], optional=True))
        for name in SHOWN:
            self.addParameter(parameter(TRAIN[name], advanced=name in ADVANCED))
        self.addParameter(QgsProcessingParameterFolderDestination(
            self.OUTPUT, self.tr("Run folder")))
        self.addOutput(QgsProcessingOutputFile(self.CHECKPOINT, self.tr("Checkpoint")))

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        run_dir = as_path(self.parameterAsString(parameters, self.OUTPUT, context))
        a, b = self._domain(parameters, context, "A"), self._domain(parameters, context, "B")
        values = {name: option_value(self, parameters, TRAIN[name], context) for name in SHOWN}
        if a is None and not values["resume"]:
            raise QgsProcessingException("domain A: choose its rasters or its chip folder")
        aoi = None
        if parameters.get(self.AOI) is not None:
            aoi_path = self.parameterAsCompatibleSourceLayerPath(
                parameters, self.AOI, context, ["gpkg", "shp", "geojson", "fgb"], "gpkg",
                feedback)
            aoi = as_path(aoi_path) if aoi_path else None
        stacks = {name: tuple(as_path(self.raster_path(layer, key)) for layer in
                              self.parameterAsLayerList(parameters, key, context) or []) or None
                  for key, name in ((self.A_STACK, "a_stack"), (self.B_STACK, "b_stack"))}
        job = train_job(a, b, run_dir, aoi=aoi, **stacks, **values)  # a, b None: stored data
        result = self.run_job(job, feedback)
        checkpoint = str(result) if result is not None else str(run_dir / RUN_CHECKPOINT_NAME)
        feedback.pushInfo(f"checkpoint: {checkpoint}")
        return {self.OUTPUT: str(run_dir), self.CHECKPOINT: checkpoint}

    def _domain(self, parameters: dict[str, Any], context: QgsProcessingContext,
                key: str) -> Path | tuple[Path, ...] | None:
        """A domain's rasters (files behind the layers) or its chip folder; not both."""
        layers = self.parameterAsLayerList(parameters, f"{key}_RASTERS", context) or []
        folder = self.parameterAsFile(parameters, key, context)
        if layers and folder:
            raise QgsProcessingException(f"domain {key}: give its rasters or its chip folder, "
                                         "not both")
        if layers:
            paths = tuple(as_path(self.raster_path(layer, f"{key}_RASTERS"))
                          for layer in layers)
            return paths[0] if len(paths) == 1 else paths
        return as_path(folder) if folder else None
