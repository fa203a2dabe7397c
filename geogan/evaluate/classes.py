"""Per-class accuracy and the confusion matrix of two paletted (classified) rasters.

When PREDICTION and REFERENCE are both one-band paletted rasters (a colour table, as
``translate --palette`` writes), :func:`evaluate_classes` compares classes: the
reference's classes are the colours of its colour table found in its valid pixels, a
predicted pixel is of the class whose colour its own colour table gives it (the
same colour; "other" when the reference has no such colour), and the report holds the
overall pixel accuracy, each class's accuracy (recall: the share of the reference's
pixels of that class predicted as it) and the confusion matrix (rows: reference,
columns: prediction). Pixels are compared where both are valid (GDAL's rule, as the
continuous metrics) on PREDICTION's grid; REFERENCE is read through a nearest-neighbour
``WarpedVRT`` when the grids differ.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from geogan.errors import InputError

#: The column of predicted colours the reference has no class of.
OTHER = "other"


def is_paletted(ds: Any) -> bool:
    """Whether an open rasterio dataset is one band of colour indices with a colour table."""
    from rasterio.enums import ColorInterp

    return ds.count == 1 and ds.colorinterp[0] == ColorInterp.palette


def paletted_pair(prediction: str | os.PathLike[str], reference: str | os.PathLike[str]
                  ) -> bool:
    """Whether both rasters open and are paletted (else the continuous metrics apply, and
    their own checks report what is wrong)."""
    from geogan.rasterio_io import open_raster

    try:
        with open_raster(prediction) as pred, open_raster(reference) as ref:
            return is_paletted(pred) and is_paletted(ref)
    except Exception:  # unreadable: the continuous path says so in one line
        return False


def _colours(ds: Any) -> dict[int, tuple[int, int, int]]:
    try:
        return {int(k): tuple(int(v) for v in rgba[:3])  # type: ignore[misc]
                for k, rgba in ds.colormap(1).items()}
    except ValueError as exc:
        raise InputError(f"{ds.name} has no readable colour table: {exc}") from exc


@dataclass(frozen=True)
class ClassReport:
    """Per-class scores of a paletted PREDICTION against a paletted REFERENCE."""

    prediction: str
    reference: str
    classes: tuple[tuple[int, int, int], ...]  # the reference's class colours
    confusion: tuple[tuple[int, ...], ...]  # [reference class][predicted class or other]
    valid_pixels: int

    @property
    def accuracy(self) -> float:
        hits = sum(self.confusion[i][i] for i in range(len(self.classes)))
        return hits / self.valid_pixels if self.valid_pixels else 0.0

    def class_accuracy(self) -> list[float | None]:
        """Each reference class's share of pixels predicted as it (None: no pixel)."""
        return [row[i] / sum(row) if sum(row) else None for i, row in enumerate(self.confusion)]

    def names(self) -> list[str]:
        return ["#{:02x}{:02x}{:02x}".format(*c) for c in self.classes]

    def to_json(self, words: Callable[[str], str] | None = None) -> dict[str, Any]:
        del words  # no parameter names in this report
        return {"prediction": self.prediction, "reference": self.reference,
                "valid_pixels": self.valid_pixels, "accuracy": self.accuracy,
                "classes": [{"colour": list(c), "name": n, "pixels": sum(row),
                             "accuracy": acc}
                            for c, n, row, acc in zip(self.classes, self.names(),
                                                      self.confusion, self.class_accuracy(),
                                                      strict=True)],
                "confusion": {"rows": "reference", "columns": [*self.names(), OTHER],
                              "counts": [list(r) for r in self.confusion]}}

    def format_table(self, words: Callable[[str], str] | None = None) -> str:
        del words
        names = self.names()
        lines = [f"prediction:   {self.prediction}", f"reference:    {self.reference}",
                 f"valid pixels: {self.valid_pixels:,}; classes: {len(self.classes)} "
                 "(paletted rasters: per-class accuracy and confusion matrix)",
                 f"accuracy:     {self.accuracy:.4f}", "",
                 f"{'class':<8}  {'pixels':>10}  {'accuracy':>8}"]
        for n, row, acc in zip(names, self.confusion, self.class_accuracy(), strict=True):
            lines.append(f"{n:<8}  {sum(row):>10,}  "
                         f"{'-' if acc is None else format(acc, '.4f'):>8}")
        width = max(9, *(len(f"{v:,}") for r in self.confusion for v in r)) + 1
        lines += ["", "confusion (rows: reference, columns: prediction)",
                  " " * 8 + "".join(f"{n:>{width}}" for n in [*names, OTHER])]
        for n, row in zip(names, self.confusion, strict=True):
            lines.append(f"{n:<8}" + "".join(f"{v:>{width},}" for v in row))
        return "\n".join(lines)


def evaluate_classes(prediction: str | os.PathLike[str], reference: str | os.PathLike[str],
                     block: int = 1024) -> ClassReport:
    """Compare two paletted rasters class by class (see the module doc)."""
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT
    from rasterio.windows import Window

    from geogan.rasterio_io import open_raster
    from geogan.rasterio_meta import read_valid

    with contextlib.ExitStack() as stack:
        pred = stack.enter_context(open_raster(prediction))
        ref = stack.enter_context(open_raster(reference))
        ref_colours, pred_colours = _colours(ref), _colours(pred)
        same = (ref.crs == pred.crs and ref.transform == pred.transform
                and ref.shape == pred.shape)
        view = ref if same else stack.enter_context(WarpedVRT(
            ref, crs=pred.crs, transform=pred.transform, width=pred.width,
            height=pred.height, resampling=Resampling.nearest))
        counts = np.zeros((256, 256), dtype=np.int64)  # [reference index, predicted index]
        for row in range(0, pred.height, block):
            for col in range(0, pred.width, block):
                win = Window(col, row, min(block, pred.width - col),
                             min(block, pred.height - row))
                p, r = pred.read(1, window=win), view.read(1, window=win)
                valid = (read_valid(pred, [1], win, p[None], pred.nodata)
                         & read_valid(view, [1], win, r[None], view.nodata))
                np.add.at(counts, (r[valid].astype(np.intp), p[valid].astype(np.intp)), 1)
    return _report(str(prediction), str(reference), counts, ref_colours, pred_colours)


def _report(prediction: str, reference: str, counts: np.ndarray,
            ref_colours: dict[int, tuple[int, int, int]],
            pred_colours: dict[int, tuple[int, int, int]]) -> ClassReport:
    """Counts by index pair gathered into counts by reference class colour."""
    classes: list[tuple[int, int, int]] = []
    for index in np.flatnonzero(counts.sum(axis=1)):
        colour = ref_colours.get(int(index), (int(index),) * 3)
        if colour not in classes:
            classes.append(colour)
    column = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes) + 1), dtype=np.int64)
    for r_index, p_index in zip(*np.nonzero(counts), strict=True):
        r = column[ref_colours.get(int(r_index), (int(r_index),) * 3)]
        p = column.get(pred_colours.get(int(p_index), (-1, -1, -1)), len(classes))
        matrix[r, p] += counts[r_index, p_index]
    if not classes:
        raise InputError(f"no pixel is valid in both {prediction} and {reference}; check "
                         "their nodata values and that they cover the same area")
    return ClassReport(prediction, reference, tuple(classes),
                       tuple(tuple(int(v) for v in row) for row in matrix),
                       int(matrix.sum()))
