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
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
)

from .algorithm import GeoganAlgorithm, as_path
from .jobs import DEVICES, GENERATORS, MODELS, RUN_CHECKPOINT_NAME, UPSAMPLES, train_job

_DEFAULT_GENERATOR = "model default"


class TrainAlgorithm(GeoganAlgorithm):
    """Rasters or chip folders -> a run folder with a self-describing checkpoint."""

    A = "A"
    B = "B"
    A_RASTERS = "A_RASTERS"
    B_RASTERS = "B_RASTERS"
    AOI = "AOI"
    MAX_NODATA = "MAX_NODATA"
    MIN_STD = "MIN_STD"
    MODEL = "MODEL"
    EPOCHS = "EPOCHS"
    BATCH_SIZE = "BATCH_SIZE"
    CROP = "CROP"
    DEVICE = "DEVICE"
    RESUME = "RESUME"
    OVERWRITE = "OVERWRITE"
    MAX_STEPS = "MAX_STEPS"
    GENERATOR = "GENERATOR"
    NGF = "NGF"
    UPSAMPLE = "UPSAMPLE"
    LR = "LR"
    OUTPUT = "OUTPUT"
    CHECKPOINT = "CHECKPOINT"

    def name(self) -> str:
        return "train"

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return self.tr("Train")

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return self.tr(
            "Trains a generator that translates domain A into domain B, straight from "
            "rasters or from chip folders written by 'Tile raster'.\n\n"
            "Rasters: pick the rasters of each domain; training reads random windows of the "
            "crop size spread over their valid ground (no chips are written), optionally "
            "only inside the area-of-interest polygons, skipping windows with too much "
            "nodata or too little contrast. For pix2pix each A window is read from the B "
            "rasters over the same ground.\n\n"
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
        self.addParameter(QgsProcessingParameterFile(
            self.A, self.tr("Domain A chip folder"), QgsProcessingParameterFile.Folder,
            optional=True))
        self.addParameter(QgsProcessingParameterFile(
            self.B, self.tr("Domain B chip folder"), QgsProcessingParameterFile.Folder,
            optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.AOI, self.tr("Area of interest for the raster windows (polygons)"),
            [QgsProcessing.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterEnum(
            self.MODEL, self.tr("Model"), list(MODELS), defaultValue=MODELS[0],
            usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.EPOCHS, self.tr("Epochs"), QgsProcessingParameterNumber.Integer, 200,
            minValue=1, maxValue=100000))
        self.addParameter(QgsProcessingParameterNumber(
            self.BATCH_SIZE, self.tr("Batch size"), QgsProcessingParameterNumber.Integer, 1,
            minValue=1, maxValue=1024))
        self.addParameter(QgsProcessingParameterNumber(
            self.CROP, self.tr("Training crop (pixels)"), QgsProcessingParameterNumber.Integer,
            256, minValue=8, maxValue=8192))
        self.addParameter(QgsProcessingParameterEnum(
            self.DEVICE, self.tr("Device"), list(DEVICES), defaultValue=DEVICES[0],
            usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterBoolean(
            self.RESUME, self.tr("Continue the run in the run folder (same settings)"), False))
        self.addParameter(QgsProcessingParameterBoolean(
            self.OVERWRITE, self.tr("Replace an existing run folder"), False))
        advanced = [
            QgsProcessingParameterNumber(
                self.MAX_STEPS, self.tr("Length in optimiser steps instead of epochs (0: off)"),
                QgsProcessingParameterNumber.Integer, 0, minValue=0),
            QgsProcessingParameterEnum(
                self.GENERATOR, self.tr("Generator architecture"),
                [_DEFAULT_GENERATOR, *GENERATORS], defaultValue=_DEFAULT_GENERATOR,
                usesStaticStrings=True),
            QgsProcessingParameterNumber(
                self.NGF, self.tr("Generator width (filters in the first layer)"),
                QgsProcessingParameterNumber.Integer, 64, minValue=1, maxValue=1024),
            QgsProcessingParameterEnum(
                self.UPSAMPLE, self.tr("Generator upsampling"), list(UPSAMPLES),
                defaultValue="resize", usesStaticStrings=True),
            QgsProcessingParameterNumber(
                self.LR, self.tr("Learning rate"), QgsProcessingParameterNumber.Double, 2e-4,
                minValue=0.0),
            QgsProcessingParameterNumber(
                self.MAX_NODATA, self.tr("Rasters: largest nodata fraction of a window (0 to 1)"),
                QgsProcessingParameterNumber.Double, 0.0, minValue=0.0, maxValue=1.0),
            QgsProcessingParameterNumber(
                self.MIN_STD, self.tr("Rasters: smallest band standard deviation of a window"),
                QgsProcessingParameterNumber.Double, 0.0, minValue=0.0),
        ]
        for parameter in advanced:
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(parameter)
        self.addParameter(QgsProcessingParameterFolderDestination(
            self.OUTPUT, self.tr("Run folder")))
        self.addOutput(QgsProcessingOutputFile(self.CHECKPOINT, self.tr("Checkpoint")))

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        run_dir = as_path(self.parameterAsString(parameters, self.OUTPUT, context))
        a, b = self._domain(parameters, context, "A"), self._domain(parameters, context, "B")
        resume = self.parameterAsBoolean(parameters, self.RESUME, context)
        if a is None and not resume:
            raise QgsProcessingException("domain A: choose its rasters or its chip folder")
        aoi = None
        if parameters.get(self.AOI) is not None:
            aoi_path = self.parameterAsCompatibleSourceLayerPath(
                parameters, self.AOI, context, ["gpkg", "shp", "geojson", "fgb"], "gpkg",
                feedback)
            aoi = as_path(aoi_path) if aoi_path else None
        generator = self.parameterAsEnumString(parameters, self.GENERATOR, context)
        job = train_job(
            a,  # None when resuming: the run's stored data
            b,
            run_dir,
            model=self.parameterAsEnumString(parameters, self.MODEL, context),
            epochs=self.parameterAsInt(parameters, self.EPOCHS, context),
            max_steps=self.parameterAsInt(parameters, self.MAX_STEPS, context) or None,
            batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
            crop=self.parameterAsInt(parameters, self.CROP, context),
            generator=None if generator in ("", _DEFAULT_GENERATOR) else generator,
            ngf=self.parameterAsInt(parameters, self.NGF, context),
            upsample=self.parameterAsEnumString(parameters, self.UPSAMPLE, context) or "resize",
            lr=self.parameterAsDouble(parameters, self.LR, context),
            device=self.parameterAsEnumString(parameters, self.DEVICE, context),
            resume=resume,
            overwrite=self.parameterAsBoolean(parameters, self.OVERWRITE, context),
            aoi=aoi,
            max_nodata=self.parameterAsDouble(parameters, self.MAX_NODATA, context),
            min_std=self.parameterAsDouble(parameters, self.MIN_STD, context))
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
