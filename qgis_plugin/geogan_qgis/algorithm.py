"""Shared pieces of the geogan algorithms: feedback adapter, job runner, input checks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsApplication,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProviderRegistry,
    QgsRaster,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from . import backend, settings
from .backend import BackendError, Job

_ICON = os.path.join(os.path.dirname(__file__), "icon.svg")
#: Added to the help under qgis_process, whose help lists a choice's values by number only.
CHOICES_NOTE = ("Choices (enum arguments) are given by name (e.g. DIRECTION=a2b) or by "
                "number (DIRECTION=0).")


class QgisFeedback:
    """:class:`backend.Feedback` on top of a ``QgsProcessingFeedback``."""

    def __init__(self, feedback: QgsProcessingFeedback | None) -> None:
        self._feedback = feedback if feedback is not None else QgsProcessingFeedback()

    def set_progress(self, percent: float) -> None:
        self._feedback.setProgress(percent)

    def set_text(self, text: str) -> None:
        self._feedback.setProgressText(text)

    def info(self, message: str) -> None:
        self._feedback.pushInfo(message)

    def is_cancelled(self) -> bool:
        return bool(self._feedback.isCanceled())


class GeoganAlgorithm(QgsProcessingAlgorithm):
    """Base class: one geogan job per run, errors as ``QgsProcessingException``."""

    def createInstance(self) -> GeoganAlgorithm:  # noqa: N802 - QGIS API
        return type(self)()

    def tr(self, text: str) -> str:
        return QCoreApplication.translate("geogan", text)

    def group(self) -> str:
        return ""

    def groupId(self) -> str:  # noqa: N802 - QGIS API
        return ""

    def icon(self) -> QIcon:
        return QIcon(_ICON)

    def helpUrl(self) -> str:  # noqa: N802 - QGIS API
        return ""

    def help_text(self) -> str:
        """The algorithm's help, shown beside its dialog."""
        return ""

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        """:meth:`help_text`, and under qgis_process how to give a choice there."""
        text = self.help_text()
        if QgsApplication.platform() == "qgis_process":
            text += "\n\n" + self.tr(CHOICES_NOTE)
        return text

    def run_job(self, job: Job, feedback: QgsProcessingFeedback | None) -> Any:
        """Run ``job`` with the configured backend; failures become QgsProcessingException."""
        adapter = QgisFeedback(feedback)
        try:
            return backend.run_job(job, adapter, backend=settings.backend(),
                                   executable=settings.executable())
        except BackendError as exc:
            raise QgsProcessingException(str(exc)) from exc

    @staticmethod
    def raster_path(layer: QgsRasterLayer | None, parameter: str) -> str:
        """The file behind a raster layer; geogan reads files through GDAL."""
        if layer is None:
            raise QgsProcessingException(f"{parameter}: no raster layer given; "
                                         "choose a raster layer or file")
        if layer.providerType() != "gdal":
            raise QgsProcessingException(
                f"{parameter}: layer {layer.name()} is not a file-based raster "
                f"({layer.providerType()}); save it as a GeoTIFF first")
        parts = QgsProviderRegistry.instance().decodeUri("gdal", layer.source())
        path = parts.get("path") or layer.source()
        return str(path)

    @staticmethod
    def data_band_count(layer: QgsRasterLayer) -> int:
        """The bands geogan reads of ``layer`` by default: all but an alpha band (which
        geogan takes as the mask, never as data)."""
        provider = layer.dataProvider()
        return sum(1 for b in range(1, layer.bandCount() + 1)
                   if provider.colorInterpretation(b) != QgsRaster.AlphaBand)

    @staticmethod
    def checked(call: Any, *args: Any, **kwargs: Any) -> Any:
        """Call a pure-Python check, turning BackendError into QgsProcessingException."""
        try:
            return call(*args, **kwargs)
        except BackendError as exc:
            raise QgsProcessingException(str(exc)) from exc


def as_path(value: str) -> Path:
    return Path(value).expanduser()
