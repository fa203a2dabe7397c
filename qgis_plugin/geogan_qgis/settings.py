"""Processing settings of the geogan provider (Processing > Options > Providers > geogan).

Values live in the QGIS profile under ``Processing/Configuration/<NAME>``, so
they are read the same way in the QGIS desktop and in ``qgis_process``.
"""

from __future__ import annotations

from typing import Any

from qgis.core import QgsSettings

from .backend import BACKENDS

#: Path of the geogan executable of another environment; empty: $GEOGAN_EXECUTABLE, then PATH.
EXECUTABLE = "GEOGAN_EXECUTABLE"
#: "auto", "python" (QGIS's own Python) or "executable" (the command above).
BACKEND = "GEOGAN_BACKEND"
_PREFIX = "Processing/Configuration/"


def register(group: str, icon: Any) -> list[str]:
    """Show the settings in Processing's options dialog; returns the names registered."""
    try:
        from processing.core.ProcessingConfig import ProcessingConfig, Setting
    except ImportError:  # Processing plugin absent: settings still work through QgsSettings
        return []
    ProcessingConfig.settingIcons[group] = icon
    ProcessingConfig.addSetting(Setting(
        group, EXECUTABLE, "geogan executable (empty: $GEOGAN_EXECUTABLE, then geogan on PATH)",
        "", valuetype=Setting.FILE))
    ProcessingConfig.addSetting(Setting(
        group, BACKEND, "Run geogan in (auto: QGIS's Python when it has geogan and torch)",
        BACKENDS[0], valuetype=Setting.SELECTION, options=list(BACKENDS)))
    ProcessingConfig.readSettings()
    return [EXECUTABLE, BACKEND]


def unregister(names: list[str]) -> None:
    try:
        from processing.core.ProcessingConfig import ProcessingConfig
    except ImportError:
        return
    for name in names:
        if name in ProcessingConfig.settings:
            ProcessingConfig.removeSetting(name)


def executable() -> str:
    """The configured geogan executable, or "" to use $GEOGAN_EXECUTABLE or PATH."""
    value = QgsSettings().value(_PREFIX + EXECUTABLE, "")
    return str(value or "").strip()


def backend() -> str:
    """The configured backend name, or "" to use $GEOGAN_BACKEND or "auto"."""
    value = str(QgsSettings().value(_PREFIX + BACKEND, "") or "").strip()
    if value.isdigit():  # Processing stores a selection as its index
        index = int(value)
        return BACKENDS[index] if 0 <= index < len(BACKENDS) else ""
    return value
