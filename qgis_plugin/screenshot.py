"""Render the Translate raster dialog to a PNG (for the README), without a display.

Run with QGIS's Python (the one that imports ``qgis``), for example::

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 qgis_plugin/screenshot.py \
        docs/qgis_translate_dialog.png

The dialog is filled with a sample raster from geogan/sample_data/ and an example
checkpoint path, then grabbed as an image (PNG, palette-reduced to stay small).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, nargs="?",
                        default=ROOT / "docs" / "qgis_translate_dialog.png")
    parser.add_argument("--raster", type=Path,
                        default=ROOT / "geogan" / "sample_data" / "naip_2009.tif")
    parser.add_argument("--size", default="980x1150", help="dialog size WIDTHxHEIGHT")
    parser.add_argument("--collapse-advanced", action="store_true",
                        help="leave the Advanced Parameters group collapsed")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.path.insert(0, str(HERE))
    from qgis.core import QgsApplication, QgsProject, QgsRasterLayer

    app = QgsApplication([], True)
    app.initQgis()
    plugins = Path(QgsApplication.pkgDataPath()) / "python" / "plugins"
    sys.path.insert(0, str(plugins))
    from processing.core.Processing import Processing
    from processing.gui.AlgorithmDialog import AlgorithmDialog

    Processing.initialize()
    from geogan_qgis.plugin import GeoganPlugin

    plugin = GeoganPlugin(None)
    plugin.initProcessing()
    layer = QgsRasterLayer(str(args.raster), args.raster.stem)
    if not layer.isValid():
        raise SystemExit(f"Error: cannot open {args.raster} as a raster layer")
    QgsProject.instance().addMapLayer(layer)
    alg = QgsApplication.processingRegistry().createAlgorithmById("geogan:translate")
    dialog = AlgorithmDialog(alg, False, None)
    dialog.setWindowTitle("Translate raster")
    dialog.setParameters({
        "INPUT": layer.id(),
        "CHECKPOINT": "/data/runs/naip_2009_to_2020/model.safetensors",
        "DIRECTION": "a2b", "TILE": 512, "OVERLAP": 64, "BATCH_SIZE": 0, "DEVICE": "auto",
    })
    width, height = (int(v) for v in args.size.split("x"))
    dialog.show()
    if not args.collapse_advanced:  # show the advanced options: click the group's arrow
        from qgis.PyQt.QtWidgets import QToolButton, QWidget

        group = dialog.findChild(QWidget, "grpAdvanced")
        arrow = group.findChild(QToolButton, "collapseButton") if group is not None else None
        if arrow is None:
            raise SystemExit("Error: no Advanced Parameters group in the dialog")
        arrow.click()
    dialog.resize(width, height)  # after show(): the dialog restores its saved geometry there
    for _ in range(30):
        app.processEvents()
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtGui import QImage

    # a palette PNG without dithering keeps text crisp and the file small
    image = dialog.grab().toImage().convertToFormat(
        QImage.Format_Indexed8, Qt.ThresholdDither | Qt.AvoidDither)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if not image.save(str(args.output), "PNG"):
        raise SystemExit(f"Error: cannot write {args.output}")
    sys.stdout.write(f"{args.output} {image.width()}x{image.height()}\n")
    dialog.close()
    plugin.unload()
    QgsProject.instance().removeAllMapLayers()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
