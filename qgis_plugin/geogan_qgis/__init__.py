"""geogan for QGIS: a Processing provider with Translate raster, Tile raster and Train.

QGIS imports this package at start-up, so it imports nothing heavy: QGIS
classes load with the plugin, geogan and torch only when an algorithm runs.

The options, choices, names and protocols the plugin shares with geogan come from
geogan's torch-free ground floor, ``geogan/contract``: the plugin zip carries a copy
as ``geogan_qgis/contract``; in a source checkout the repository's own is used. Either
way it is importable as ``geogan_qgis.contract``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any


def _load_contract() -> None:
    """Make geogan's ground floor importable as ``geogan_qgis.contract``."""
    name = f"{__name__}.contract"
    if name in sys.modules:
        return
    here = Path(__file__).resolve().parent
    for folder in (here / "contract", here.parent.parent / "geogan" / "contract"):
        init = folder / "__init__.py"
        if init.is_file():
            break
    else:
        raise ImportError("geogan_qgis: geogan's contract (geogan_qgis/contract) is missing; "
                          "reinstall "
                          "the plugin from its zip")
    found = importlib.util.spec_from_file_location(name, init,
                                                   submodule_search_locations=[str(folder)])
    assert found is not None and found.loader is not None
    module = importlib.util.module_from_spec(found)
    sys.modules[name] = module
    found.loader.exec_module(module)


_load_contract()


def classFactory(iface: Any) -> Any:  # noqa: N802 - name required by QGIS
    """Entry point QGIS calls to create the plugin."""
    from .plugin import GeoganPlugin

    return GeoganPlugin(iface)
