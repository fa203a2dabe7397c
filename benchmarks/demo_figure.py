"""Draw docs/demo_short_run.jpg: the short demo training of 0.1 against today's, at full size.

Runs ``geogan demo`` twice (0.1's recipe: 150 steps of four 128 px windows, identity
weight 0.5, learning rate 2e-4; and today's defaults), or takes the two translations
given, and puts a full-resolution crop of the held-out eastern half side by side:
2009 input | 0.1's demo | today's demo | 2020 reference (warped onto the 2009 grid).
Prints each translation's detail and checker ratios to the 2020 photo on the eastern
half (as ``metrics.json`` has them).

    OMP_NUM_THREADS=2 python benchmarks/demo_figure.py                 # about 9 minutes
    python benchmarks/demo_figure.py --old OLD.tif --new NEW.tif       # seconds
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
#: 0.1's demo recipe, as DemoConfig fields.
OLD_RECIPE = {"steps": 150, "batch_size": 4, "lambda_identity": 0.5, "lr": 2e-4}


def _run(output: Path, **recipe: object) -> Path:
    from geogan.demo import DemoConfig, run_demo

    return run_demo(DemoConfig(output=output, **recipe)).translated  # type: ignore[arg-type]


def _crop(path: Path, grid: dict, window: object) -> np.ndarray:
    import rasterio
    from rasterio.vrt import WarpedVRT

    with rasterio.open(path) as ds:
        if ds.transform == grid["transform"] and ds.crs == grid["crs"]:
            x = ds.read((1, 2, 3), window=window)
        else:
            with WarpedVRT(ds, **grid) as vrt:
                x = vrt.read((1, 2, 3), window=window)
    return np.moveaxis(x, 0, -1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, help="a translation by 0.1's demo recipe")
    parser.add_argument("--new", type=Path, help="a translation by today's demo")
    parser.add_argument("--size", type=int, default=300, help="crop side in px")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "demo_short_run.jpg")
    args = parser.parse_args(argv)

    import rasterio
    from PIL import Image, ImageDraw
    from rasterio.windows import Window

    from geogan.demo import _halves, texture_energies

    data = ROOT / "geogan" / "sample_data"
    source, reference = data / "naip_2009.tif", data / "naip_2020.tif"
    with tempfile.TemporaryDirectory(prefix="geogan_demo_figure_") as tmp:
        work = Path(tmp)
        old = args.old or _run(work / "old", **OLD_RECIPE)
        new = args.new or _run(work / "new")
        east = _halves(source, work / "aoi")[1]
        ref_detail, ref_checker = texture_energies(reference, east)
        for label, path in (("0.1's demo", old), ("today's demo", new)):
            detail, checker = texture_energies(path, east)
            print(f"{label:<14} detail {detail / ref_detail:.2f}x  checker "
                  f"{checker / ref_checker:.2f}x  ({path})")
        with rasterio.open(source) as src:
            grid = {"crs": src.crs, "transform": src.transform, "width": src.width,
                    "height": src.height}
            window = Window(src.width // 2 + 40, 200, args.size, args.size)
        panels = [("2009 input", _crop(source, grid, window)),
                  ("0.1's demo: 150 steps of 4 windows", _crop(old, grid, window)),
                  ("today's demo: 500 steps of 1", _crop(new, grid, window)),
                  ("2020 reference", _crop(reference, grid, window))]
    gap, label_h, size = 6, 18, args.size
    canvas = Image.new("RGB", (len(panels) * (size + gap) - gap, size + label_h), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (label, rgb) in enumerate(panels):
        canvas.paste(Image.fromarray(np.ascontiguousarray(rgb)), (i * (size + gap), label_h))
        draw.text((i * (size + gap) + 3, 3), label, fill="black")
    canvas.save(args.output, quality=88)
    print(f"wrote {args.output} ({canvas.size[0]} x {canvas.size[1]} px)")


if __name__ == "__main__":
    main()
