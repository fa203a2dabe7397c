"""The plugin object: registers the geogan Processing provider."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsApplication

from .provider import GeoganProvider


class GeoganPlugin:
    """Adds the ``geogan`` provider to the Processing registry (toolbox, modeler, qgis_process)."""

    def __init__(self, iface: Any = None) -> None:
        self.iface = iface
        self.provider: GeoganProvider | None = None

    def initProcessing(self) -> None:  # noqa: N802 - QGIS API
        """Called by QGIS (also by qgis_process) for plugins with hasProcessingProvider=yes."""
        if self.provider is None:
            self.provider = GeoganProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802 - QGIS API
        self.initProcessing()

    def unload(self) -> None:
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
