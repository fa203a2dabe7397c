"""Draw docs/norm_modes.jpg: --norm window vs global at --tile 256, with their difference maps.

Translates geogan/sample_data/naip_2009.tif with the shipped model
(geogan/sample_data/pretrained/naip_2009_to_2020.safetensors) at --tile 256 --overlap 32 with
``window`` and ``global`` statistics, and once exactly (the generator on the whole
raster in one pass: benchmarks/normstats.exact, the reference), then writes a 2 x 2
picture (bands 1-3, half resolution): the two translations on top, their absolute
difference to the exact translation below (mean over the four bands, 0 to 32 DN from
black through red and yellow to white; the outer 48 px, where windows see mirrored
context and the one-pass run does not, are grey).

    OMP_NUM_THREADS=2 python benchmarks/norm_figure.py [-o docs/norm_modes.jpg]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "geogan" / "sample_data" / "naip_2009.tif"
MODEL = ROOT / "geogan" / "sample_data" / "pretrained" / "naip_2009_to_2020.safetensors"
#: Difference (DN) shown as white.
DIFF_MAX = 32.0


def heat(d: np.ndarray) -> np.ndarray:
    """``(H, W)`` differences -> ``(H, W, 3)`` uint8: black, red, yellow, white."""
    t = np.clip(d / DIFF_MAX, 0.0, 1.0)
    stops = np.array([0.0, 0.33, 0.66, 1.0])
    colours = np.array([[0, 0, 0], [200, 30, 20], [250, 210, 40], [255, 255, 255]], float)
    rgb = np.stack([np.interp(t, stops, colours[:, c]) for c in range(3)], axis=-1)
    return rgb.astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "norm_modes.jpg")
    parser.add_argument("--tile", type=int, default=256)
    args = parser.parse_args()

    import rasterio
    from PIL import Image, ImageDraw

    from geogan.checkpoint import load_generator
    from geogan.translate import TranslateConfig, translate_raster

    gen = load_generator(MODEL, "a2b", "cpu")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from normstats import EDGE, exact

    runs = {"window": dict(tile=args.tile, overlap=args.tile // 8, norm="window"),
            "global": dict(tile=args.tile, overlap=args.tile // 8, norm="global")}
    out: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, kw in runs.items():
            path = translate_raster(gen, SAMPLE, Path(tmp) / f"{name}.tif",
                                    TranslateConfig(precision="fp32", **kw))
            with rasterio.open(path) as src:
                out[name] = src.read().astype(np.float64)
    out["ref"] = exact(gen, SAMPLE)
    inner = (slice(None), slice(EDGE, -EDGE), slice(EDGE, -EDGE))
    panels = []
    for name in ("window", "global"):
        diff = np.abs(out[name] - out["ref"])
        rgb_d = heat(diff.mean(axis=0))
        edge = np.ones(rgb_d.shape[:2], dtype=bool)
        edge[EDGE:-EDGE, EDGE:-EDGE] = False
        rgb_d[edge] = 128
        rgb = np.clip(out[name][:3].transpose(1, 2, 0), 0, 255).astype(np.uint8)
        panels.append((rgb, f"--norm {name}, --tile {args.tile}"))
        panels.append((rgb_d, f"{name}: |difference| to the exact translation, "
                              f"mean {diff[inner].mean():.2f} DN"))
    h, w = panels[0][0].shape[:2]
    half = (w // 2, h // 2)
    canvas = Image.new("RGB", (2 * half[0], 2 * half[1] + 20), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (arr, label) in enumerate(panels):
        col, row = i // 2, i % 2  # columns: window, global; rows: image, difference
        img = Image.fromarray(arr).resize(half, Image.LANCZOS)
        x, y = col * half[0], row * half[1]
        canvas.paste(img, (x, y))
        draw.rectangle([x, y, x + 8 + 6 * len(label), y + 14], fill="white")
        draw.text((x + 4, y + 2), label, fill="black")
    draw.text((4, 2 * half[1] + 4), f"difference colours: black 0, red {DIFF_MAX / 3:.0f}, "
                                    f"yellow {2 * DIFF_MAX / 3:.0f}, white {DIFF_MAX:.0f}+ DN",
              fill="black")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(args.output, quality=85, optimize=True)
    print(f"wrote {args.output} ({args.output.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
