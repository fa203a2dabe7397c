"""geogan for QGIS: a Processing provider with Translate raster, Tile raster and Train.

QGIS imports this package at start-up, so it imports nothing heavy: QGIS
classes load with the plugin, geogan and torch only when an algorithm runs.
"""

from __future__ import annotations

from typing import Any


def classFactory(iface: Any) -> Any:  # noqa: N802 - name required by QGIS
    """Entry point QGIS calls to create the plugin."""
    from .plugin import GeoganPlugin

    return GeoganPlugin(iface)
