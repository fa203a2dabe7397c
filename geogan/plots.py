"""Pictures a person looks at: preview grids of images and line plots of losses.

Drawn with Pillow alone (no matplotlib), written atomically as PNG.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geogan.fileio import atomic_output

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def to_display(image: np.ndarray) -> np.ndarray:
    """A model-space image ``(C, H, W)`` in ``[-1, 1]`` -> ``(H, W, 3)`` uint8 for a screen.

    Bands 1-3 are shown as red, green, blue (a 4-band R,G,B,NIR chip shows as true
    colour); one- and two-band images show their first band in grey.
    """
    image = np.asarray(image, dtype=np.float32)
    rgb = image[:3] if image.shape[0] >= 3 else np.repeat(image[:1], 3, axis=0)
    rgb = np.nan_to_num(rgb, nan=-1.0)
    return np.rint((np.clip(rgb, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8).transpose(1, 2, 0)


def save_image_grid(path: Path, rows: Sequence[Sequence[tuple[str, np.ndarray]]],
                    title: str = "", min_cell: int = 160) -> Path:
    """Write rows of labelled images ``(label, (C, H, W) in [-1, 1])`` as one PNG."""
    from PIL import Image, ImageDraw

    font = _font(13)
    title_font = _font(16)
    h = max(img.shape[1] for row in rows for _, img in row)
    w = max(img.shape[2] for row in rows for _, img in row)
    scale = max(1, math.ceil(min_cell / max(h, w)))
    cell_w, cell_h = w * scale, h * scale
    pad, label_h = 8, 20
    title_h = 28 if title else 0
    ncols = max(len(r) for r in rows)
    width = pad + ncols * (cell_w + pad)
    height = title_h + pad + len(rows) * (label_h + cell_h + pad)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((pad, 6), title, fill=(0, 0, 0), font=title_font)
    for r, row in enumerate(rows):
        y0 = title_h + pad + r * (label_h + cell_h + pad)
        for c, (label, img) in enumerate(row):
            x0 = pad + c * (cell_w + pad)
            draw.text((x0, y0 + 3), label, fill=(0, 0, 0), font=font)
            tile = Image.fromarray(to_display(img))
            if scale > 1:
                tile = tile.resize((img.shape[2] * scale, img.shape[1] * scale),
                                   Image.Resampling.NEAREST)
            canvas.paste(tile, (x0, y0 + label_h))
    with atomic_output(Path(path), overwrite=True) as tmp:
        canvas.save(tmp, format="PNG")
    return Path(path)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering ``[lo, hi]`` (1, 2, 5 x 10^k steps)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step - 1e-9) * step
    ticks = []
    t = start
    while t <= hi + 1e-9 * step:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        return f"{v:.1e}"
    return f"{v:.4g}"


def save_line_plot(path: Path, x: Sequence[float],
                   panels: Sequence[tuple[str, dict[str, Sequence[float]]]],
                   title: str = "", x_label: str = "step",
                   size: tuple[int, int] = (960, 260)) -> Path:
    """Write one PNG with a panel per ``(panel title, {series name: values})``.

    Every series has one value per ``x``; non-finite values leave a gap.
    """
    from PIL import Image, ImageDraw

    font = _font(12)
    title_font = _font(16)
    pw, ph = size
    title_h = 30 if title else 0
    canvas = Image.new("RGB", (pw, title_h + ph * len(panels)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((12, 7), title, fill=(0, 0, 0), font=title_font)
    xs = np.asarray(x, dtype=np.float64)
    left, right, top, bottom = 70, 180, 26, 36
    for p, (panel_title, series) in enumerate(panels):
        oy = title_h + p * ph
        x0, x1, y0, y1 = left, pw - right, oy + top, oy + ph - bottom
        draw.text((x0, oy + 6), panel_title, fill=(0, 0, 0), font=font)
        values = [np.asarray(v, dtype=np.float64) for v in series.values()]
        finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.empty(0)
        if xs.size == 0 or finite.size == 0:
            draw.text((x0, (y0 + y1) // 2), "no data yet", fill=(120, 120, 120), font=font)
            continue
        ylo, yhi = float(finite.min()), float(finite.max())
        if yhi - ylo < 1e-12:
            ylo, yhi = ylo - 1.0, yhi + 1.0
        ylo, yhi = ylo - 0.05 * (yhi - ylo), yhi + 0.05 * (yhi - ylo)
        xlo, xhi = float(xs.min()), float(xs.max())
        if xhi <= xlo:
            xlo, xhi = xlo - 1.0, xhi + 1.0

        def px(xv: float, x0: int = x0, x1: int = x1, xlo: float = xlo,
               xhi: float = xhi) -> float:
            return x0 + (xv - xlo) / (xhi - xlo) * (x1 - x0)

        def py(yv: float, y0: int = y0, y1: int = y1, ylo: float = ylo,
               yhi: float = yhi) -> float:
            return y1 - (yv - ylo) / (yhi - ylo) * (y1 - y0)

        for t in nice_ticks(ylo, yhi):
            yy = py(t)
            draw.line([(x0, yy), (x1, yy)], fill=(230, 230, 230))
            draw.text((6, yy - 7), _fmt(t), fill=(60, 60, 60), font=font)
        for t in nice_ticks(xlo, xhi, 7):
            xx = px(t)
            draw.line([(xx, y0), (xx, y1)], fill=(240, 240, 240))
            draw.text((xx - 12, y1 + 5), _fmt(t), fill=(60, 60, 60), font=font)
        draw.rectangle([x0, y0, x1, y1], outline=(0, 0, 0))
        draw.text((x1 - 30, y1 + 20), x_label, fill=(60, 60, 60), font=font)
        for k, (name, v) in enumerate(zip(series, values, strict=True)):
            color = PALETTE[k % len(PALETTE)]
            segment: list[tuple[float, float]] = []
            for xv, yv in zip(xs, v, strict=False):
                if math.isfinite(yv):
                    segment.append((px(xv), py(yv)))
                    continue
                _draw_segment(draw, segment, color)
                segment = []
            _draw_segment(draw, segment, color)
            ly = y0 + 4 + 16 * k
            draw.line([(x1 + 12, ly + 7), (x1 + 32, ly + 7)], fill=color, width=3)
            draw.text((x1 + 38, ly), name, fill=(0, 0, 0), font=font)
    with atomic_output(Path(path), overwrite=True) as tmp:
        canvas.save(tmp, format="PNG")
    return Path(path)


def _draw_segment(draw: Any, points: list[tuple[float, float]],
                  color: tuple[int, int, int]) -> None:
    if len(points) == 1:
        x, y = points[0]
        draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=color)
    elif points:
        draw.line(points, fill=color, width=2)
