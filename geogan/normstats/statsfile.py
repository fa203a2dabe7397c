"""The statistics file: the ``--norm`` modes, :class:`NormStats` and its JSON format, reading
and writing it, and where ``--save-stats`` puts it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geogan import __version__
from geogan.contract import names
from geogan.contract.limits import FLOAT32_MAX
from geogan.errors import InputError, first_line

#: Statistics file format.
STATS_FORMAT = "geogan-norm-stats"
STATS_FORMAT_VERSION = 1


@dataclass
class NormStats:
    """Statistics for every instance-norm layer of one generator.

    ``layers`` maps a module name (as in ``named_modules``) to ``(mean, var)``
    arrays, shaped ``(C,)`` for ``global`` and ``(C, rows, cols)`` for ``dense``,
    whose grid cell ``(i, j)`` is centred on raster pixel ``grid["y"][i]``,
    ``grid["x"][j]`` (``grid`` also holds the raster's ``width`` and ``height``).
    ``model`` identifies the generator (:func:`model_identity`); ``sample``
    describes where the statistics come from.
    """

    mode: str
    model: dict[str, Any]
    layers: dict[str, tuple[np.ndarray, np.ndarray]]
    sample: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": STATS_FORMAT, "format_version": STATS_FORMAT_VERSION,
            "geogan_version": __version__, "mode": self.mode, "model": self.model,
            "sample": self.sample,
            "layers": {name: {"mean": np.asarray(m, dtype=np.float64).tolist(),
                              "var": np.asarray(v, dtype=np.float64).tolist()}
                       for name, (m, v) in self.layers.items()},
        }
        if self.grid is not None:
            out["grid"] = self.grid
        return out

    @classmethod
    def from_json(cls, data: Any, source: str = "statistics") -> NormStats:
        if not isinstance(data, dict) or data.get("format") != STATS_FORMAT:
            raise InputError(f"{source} is not a geogan statistics file; give a file written "
                             "by 'geogan translate `save_stats`'")
        if int(data.get("format_version", 0)) > STATS_FORMAT_VERSION:
            raise InputError(f"{source} was written by a newer geogan "
                             f"({data.get('geogan_version')}); upgrade geogan to read it")
        mode = data.get("mode")
        if mode not in ("global", "dense"):
            raise InputError(f"{source} holds statistics of unknown mode {mode!r}")
        try:
            layers = {str(name): (np.asarray(entry["mean"], dtype=np.float64),
                                  np.asarray(entry["var"], dtype=np.float64))
                      for name, entry in data["layers"].items()}
            model = dict(data["model"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{source} is damaged ({first_line(exc)}); write it again "
                             "with `save_stats`") from exc
        want = 1 if mode == "global" else 3
        for name, (m, v) in layers.items():
            if m.shape != v.shape or m.ndim != want or not np.isfinite(m).all() \
                    or not (np.isfinite(v).all() and (v >= 0).all()):
                raise InputError(f"{source} is damaged (layer {name}); write it again "
                                 "with `save_stats`")
            if max(np.abs(m).max(initial=0.0), v.max(initial=0.0)) > FLOAT32_MAX:
                raise InputError(f"{source} holds values out of range (layer {name}: "
                                 f"{max(np.abs(m).max(), v.max()):.3g}, beyond float32's "
                                 f"{FLOAT32_MAX:.2g}, in which the statistics are applied); "
                                 "write it again with `save_stats`")
        return cls(mode, model, layers, dict(data.get("sample", {})), data.get("grid"))

    def save(self, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
        """Write the statistics as JSON, atomically; return the path."""
        from geogan.fileio import atomic_output

        path = Path(path)
        text = json.dumps(self.to_json(), indent=1)
        with atomic_output(path, overwrite=overwrite) as tmp:
            tmp.write_text(text + "\n")
        return path


def load_stats(path: str | os.PathLike[str]) -> NormStats:
    """Read a statistics file; unusable files raise :class:`InputError` in one line."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"statistics file {p} not found; write one with "
                         "'geogan translate `save_stats`'")
    try:
        data = json.loads(p.read_text())
    except RecursionError as exc:
        raise InputError(f"statistics file {p} is malformed JSON (nested too deeply); write "
                         "it again with `save_stats`") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"statistics file {p} is not valid JSON ({first_line(exc)}); "
                         "write it again with `save_stats`") from exc
    return NormStats.from_json(data, f"statistics file {p}")


def stats_path_for(output: str | os.PathLike[str]) -> Path:
    """Where ``--save-stats`` writes the statistics of ``output``: ``a.tif`` -> ``a.stats.json``."""
    p = Path(output)
    return p.with_name(p.stem + names.STATS_SUFFIX)

