"""Several rasters as one input (``train --a-stack``, ``translate --stack``): the words
and the check that a stack matches the one a checkpoint records.

A checkpoint's domain may hold ``stack``: ``[{"source": file name, "bands": n}, ...]``,
the rasters read as one input in band order (the first raster's bands, then each
stack raster's). Translate takes a stack laid out alike: as many rasters, in the same
order, each with the same number of bands.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: The help of ``--a-stack``/``--b-stack``/``--stack`` (``%s``: what the stack goes with).
STACK_HELP = ("More rasters read with %s as one input, their bands after its bands, "
              "resampled onto its grid; one value per raster, in training's order (with "
              "several inputs a folder, glob or @LIST pairs files by file-name stem).")


def describe_stack(layers: Sequence[dict[str, Any]]) -> str:
    """``sar.tif (1 band) + optical.tif (4 bands)``, for messages."""
    return " + ".join(f"{x['source']} ({x['bands']} band{'s' if x['bands'] != 1 else ''})"
                      for x in layers)


def stack_problem(trained: Sequence[dict[str, Any]] | None,
                  given: Sequence[dict[str, Any]] | None) -> str | None:
    """Why a stack ``given`` to translate does not fit the ``trained`` one; None if it fits.

    Rasters are matched by position; a given file named like a trained layer at another
    position is called out as the wrong order."""
    if not trained and not given:
        return None
    text = describe_stack
    if not trained:
        return (f"the model was trained on single rasters, not on a stack ({text(given or [])})"
                "; drop `stack`")
    if not given:
        return (f"the model was trained on a stack of {text(trained)}; pass the rasters after "
                "the first with `stack`, in that order")
    names = [x["source"] for x in trained]
    for i, x in enumerate(given):
        if x["source"] in names and names.index(x["source"]) != i:
            return (f"the stack {text(given)} is in another order than training's "
                    f"{text(trained)}; pass `stack` in training's order")
    if [x["bands"] for x in given] != [x["bands"] for x in trained]:
        return (f"the stack {text(given)} does not have the bands of training's "
                f"{text(trained)}; pass the same kinds of rasters with `stack`, in that order")
    return None
