"""Maps as maps (issue #25): an aerial -> map translation with and without ``--palette``.

A synthetic map domain with known classes is made from the bundled NAIP 2009 orthophoto
(bands red, green, blue, NIR; NDVI = (NIR - red) / (NIR + red), brightness the mean of
red, green and blue), with thresholds at quantiles of the valid pixels:

- water: NDVI below its 10 % quantile and brightness below its 30 %;
- forest: NDVI at or above its 75 % quantile;
- grass: NDVI from its 40 % to its 75 % quantile;
- built: brightness at or above its 75 % quantile, of what is left;
- field: the rest.

Each class is rendered in a flat colour (the map, RGB, the training target) and written
as a paletted GeoTIFF with the colour table (the reference classes). The western 60 % of
the scene trains a small pix2pix (``--steps`` steps of ``--crop`` px windows, a
``resnet_6blocks`` of ``--ngf`` filters, on the CPU); the checkpoint must record the
map's palette. The eastern 40 % is translated with ``--palette off`` (continuous RGB)
and with the palette (the checkpoint's default, ``auto``), and both are scored against
the map: pixel accuracy (largest channel difference under 5, the aerial -> map measure)
overall and per class of the reference, and ``geogan evaluate``'s class report of the
paletted output against the reference classes.

Measured (2026-12-03, CPU, crop 128, ngf 16; east part, 146 k valid pixels; pixel
accuracy = largest channel difference under 5, overall then water/forest/grass/built/field):

- 400 steps: off 0.037 (149 178 distinct colours; 0.000/0.118/0.042/0.000/0.003);
  palette 0.483 (5 colours; 0.001/0.960/0.557/0.293/0.339).
- 1500 steps: off 0.036 (156 814 colours; 0.000/0.007/0.094/0.003/0.005);
  palette 0.569 (5 colours; 0.032/0.891/0.780/0.320/0.445). ``evaluate`` of the
  paletted output against the reference classes gives the same figures.

Example (a few minutes on a 2-core machine shared with other work)::

    OMP_NUM_THREADS=1 nice python benchmarks/palette_map.py --steps 300
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

NAIP = Path(__file__).resolve().parents[1] / "geogan" / "sample_data" / "naip_2009.tif"
NAMES = ("water", "forest", "grass", "built", "field")
COLOURS = ((60, 110, 200), (30, 110, 50), (150, 200, 110), (200, 80, 70), (235, 220, 170))
NODATA = 255


def classify(data: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``(h, w)`` class indices (NAMES) of NAIP pixels ``(4, h, w)``; NODATA outside."""
    red, nir = data[0].astype(float), data[3].astype(float)
    ndvi = np.where(nir + red > 0, (nir - red) / np.maximum(nir + red, 1), 0)
    bright = data[:3].astype(float).mean(axis=0)
    q = lambda a, p: float(np.quantile(a[valid], p))  # noqa: E731
    out = np.full(red.shape, 4, np.uint8)
    built = bright >= q(bright, 0.75)
    out[built] = 3
    out[(ndvi >= q(ndvi, 0.40)) & (ndvi < q(ndvi, 0.75))] = 2
    out[ndvi >= q(ndvi, 0.75)] = 1
    out[(ndvi < q(ndvi, 0.10)) & (bright < q(bright, 0.30))] = 0
    out[~valid] = NODATA
    return out


def write_part(path: Path, src: rasterio.DatasetReader, window: Window, data: np.ndarray,
               **extra: object) -> Path:
    profile = dict(src.profile, width=int(window.width), height=int(window.height),
                   transform=src.window_transform(window), count=data.shape[0],
                   dtype=str(data.dtype), **extra)
    profile.pop("blockxsize", None), profile.pop("blockysize", None)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if extra.get("photometric") == "PALETTE":
            dst.write_colormap(1, {i: (*c, 255) for i, c in enumerate(COLOURS)})
    return path


def make_data(work: Path) -> dict[str, Path]:
    with rasterio.open(NAIP) as src:
        data = src.read()
        valid = src.read_masks(1) > 0
        classes = classify(data, valid)
        rgb = np.asarray(COLOURS + ((0, 0, 0),), np.uint8)[np.minimum(classes, 5)]
        rgb = rgb.transpose(2, 0, 1).copy()
        split = int(src.width * 0.6)
        west, east = Window(0, 0, split, src.height), Window(split, 0, src.width - split,
                                                               src.height)
        w, e = (np.s_[:, :, :split], np.s_[:, :, split:])
        return {
            "a_west": write_part(work / "a_west.tif", src, west, data[w], photometric="MINISBLACK"),
            "b_west": write_part(work / "b_west.tif", src, west, rgb[w], nodata=0,
                                 photometric="RGB"),
            "a_east": write_part(work / "a_east.tif", src, east, data[e], photometric="MINISBLACK"),
            "b_east": write_part(work / "b_east.tif", src, east, rgb[e], nodata=0,
                                 photometric="RGB"),
            "classes_east": write_part(work / "classes_east.tif", src, east,
                                       classes[None][e], nodata=NODATA, photometric="PALETTE"),
        }


def geogan(*args: object) -> str:
    done = subprocess.run([sys.executable, "-m", "geogan", "--progress", "none",
                           *map(str, args)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"geogan {' '.join(map(str, args))} failed:\n{done.stderr}")
    return done.stdout


def as_rgb(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(3, h, w)`` colours of a raster (a paletted one expanded) and its validity."""
    with rasterio.open(path) as ds:
        if ds.count == 1:
            index = ds.read(1)
            table = ds.colormap(1)
            lut = np.zeros((256, 3), np.uint8)
            for k, rgba in table.items():
                lut[k] = rgba[:3]
            return lut[index].transpose(2, 0, 1), index != ds.nodata
        return ds.read(), ds.read_masks(1) > 0


def score(path: Path, reference: Path, classes: Path) -> dict[str, float]:
    pred, pvalid = as_rgb(path)
    ref, _ = as_rgb(reference)
    with rasterio.open(classes) as ds:
        cls = ds.read(1)
    valid = pvalid & (cls != NODATA)
    hit = (np.abs(pred.astype(int) - ref.astype(int)).max(axis=0) < 5) & valid
    out = {"all": float(hit.sum() / valid.sum()),
           "distinct colours": float(len(np.unique(pred[:, valid].T, axis=0)))}
    for k, name in enumerate(NAMES):
        sel = valid & (cls == k)
        out[name] = float(hit[sel].sum() / sel.sum()) if sel.any() else float("nan")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--ngf", type=int, default=16)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="palette_map_"))
    work.mkdir(parents=True, exist_ok=True)
    files = make_data(work)
    with rasterio.open(files["classes_east"]) as ds:
        cls = ds.read(1)
    shares = {n: float((cls == k).sum() / (cls != NODATA).sum()) for k, n in enumerate(NAMES)}
    print("class shares (east):", {k: round(v, 3) for k, v in shares.items()})
    run = work / "run"
    geogan("train", "--model", "pix2pix", "--a", files["a_west"], "--b", files["b_west"],
           "-o", run, "--max-steps", args.steps, "--crop", args.crop, "--generator",
           "resnet_6blocks", "--ngf", args.ngf, "--ndf", 16, "--device", "cpu",
           "--preview-every", 10 ** 6, "--workers", 0, "--overwrite")
    meta = json.loads((run / "model.json").read_text())
    palette = meta["domains"]["b"].get("palette")
    print("checkpoint palette:", palette)
    ckpt = run / "model.safetensors"
    off, on = work / "map_off.tif", work / "map_on.tif"
    geogan("translate", ckpt, files["a_east"], "-o", off, "--palette", "off", "--overwrite")
    geogan("translate", ckpt, files["a_east"], "-o", on, "--overwrite")
    for name, path in (("--palette off", off), ("--palette (auto)", on)):
        s = score(path, files["b_east"], files["classes_east"])
        print(f"{name:>17}: " + ", ".join(f"{k} {v:.3f}" if k != "distinct colours"
                                           else f"{k} {int(v)}" for k, v in s.items()))
    report = json.loads(geogan("evaluate", on, files["classes_east"], "--json"))
    per_class = [None if c["accuracy"] is None else round(c["accuracy"], 3)
                 for c in report["classes"]]
    print(f"evaluate (paletted vs classes): accuracy {report['accuracy']:.3f}; "
          f"per class {per_class}")
    print("confusion:", report["confusion"]["counts"])


if __name__ == "__main__":
    main()
