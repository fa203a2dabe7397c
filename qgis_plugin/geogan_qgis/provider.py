"""The ``geogan`` Processing provider."""

from __future__ import annotations

import configparser
import os

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from . import settings
from .contract.formats import default_format, qgis_extensions
from .tile_algorithm import TileRasterAlgorithm
from .train_algorithm import TrainAlgorithm
from .translate_algorithm import TranslateRasterAlgorithm

_HERE = os.path.dirname(__file__)
_ICON = os.path.join(_HERE, "icon.svg")


def plugin_version() -> str:
    """The version in metadata.txt (set to geogan's version when the zip is built)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(os.path.join(_HERE, "metadata.txt"), encoding="utf-8")
    return parser.get("general", "version", fallback="")


class GeoganProvider(QgsProcessingProvider):
    """Tile raster, Train and Translate raster, under the provider id ``geogan``."""

    def __init__(self) -> None:
        super().__init__()
        self._settings: list[str] = []

    def id(self) -> str:
        return "geogan"

    def name(self) -> str:
        return "geogan"

    def longName(self) -> str:  # noqa: N802 - QGIS API
        return "geogan: GAN translation of georeferenced imagery"

    def icon(self) -> QIcon:
        return QIcon(_ICON)

    def versionInfo(self) -> str:  # noqa: N802 - QGIS API
        return plugin_version()

    def svgIconPath(self) -> str:  # noqa: N802 - QGIS API
        return _ICON

    def load(self) -> bool:
        self._settings = settings.register(self.name(), self.icon())
        self.refreshAlgorithms()
        return True

    def unload(self) -> None:
        settings.unregister(self._settings)
        self._settings = []

    def loadAlgorithms(self) -> None:  # noqa: N802 - QGIS API
        for algorithm in (TranslateRasterAlgorithm(), TileRasterAlgorithm(), TrainAlgorithm()):
            self.addAlgorithm(algorithm)

    def supportedOutputRasterLayerExtensions(self) -> list[str]:  # noqa: N802 - QGIS API
        return qgis_extensions()  # geogan.contract.formats: the georeferenced formats

    def defaultRasterFileExtension(self) -> str:  # noqa: N802 - QGIS API
        return default_format().extension
