"""Shared fixtures: tiny seeded georeferenced rasters built in each test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

#: A projected CRS (UTM 14N, metres) and a geographic one (degrees).
PROJECTED = "EPSG:26914"
GEOGRAPHIC = "EPSG:4326"


def _default_transform(crs: str):
    from rasterio.transform import from_origin

    if crs == GEOGRAPHIC:
        return from_origin(-73.25, -3.5, 0.00081, 0.00081)
    return from_origin(485900.0, 5209247.0, 5.0, 5.0)


def make_raster_array(width: int, height: int, count: int = 3, dtype: str = "uint8",
                      seed: int = 0) -> np.ndarray:
    """Smooth-ish seeded image data ``(count, height, width)`` spanning the dtype's range."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    bands = []
    for b in range(count):
        base = np.sin(xx / (7.0 + b)) + np.cos(yy / (5.0 + 2 * b)) + rng.normal(0, 0.3, xx.shape)
        bands.append((base - base.min()) / (np.ptp(base) or 1.0))
    unit = np.stack(bands)
    if dtype == "uint8":
        return (unit * 254 + 1).astype(np.uint8)  # 1..255 so 0 can be nodata
    if dtype == "uint16":
        return (unit * 60000 + 100).astype(np.uint16)
    return (unit * 300.0 - 50.0).astype(dtype)


@pytest.fixture
def make_raster(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_raster(name, width, height, count=3, dtype="uint8", crs=PROJECTED,
    transform=None, nodata=None, nodata_box=None, data=None, seed=0) -> Path``.

    ``nodata_box=(row0, row1, col0, col1)`` fills that block with the nodata value.
    Rasters of other than three bands are written with ``photometric="MINISBLACK"``
    (gray, then undefined bands, as NAIP), so no band is Alpha; pass
    ``photometric=...`` to override.
    """

    def factory(name: str = "raster.tif", width: int = 67, height: int = 45, count: int = 3,
                dtype: str = "uint8", crs: str | None = PROJECTED, transform=None,
                nodata: float | None = None, nodata_box: tuple[int, int, int, int] | None = None,
                data: np.ndarray | None = None, seed: int = 0, **profile_extra) -> Path:
        import rasterio

        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if data is None:
            data = make_raster_array(width, height, count, dtype, seed)
        count, height, width = data.shape
        if nodata_box is not None:
            if nodata is None:
                raise ValueError("nodata_box needs a nodata value")
            r0, r1, c0, c1 = nodata_box
            data = data.copy()
            data[:, r0:r1, c0:c1] = nodata
        profile = {
            "driver": "GTiff", "width": width, "height": height, "count": count,
            "dtype": str(data.dtype), "nodata": nodata,
            "transform": transform if transform is not None else _default_transform(
                crs or PROJECTED),
        }
        if crs is not None:
            profile["crs"] = crs
        if count != 3:
            # GDAL's default for 4-band Byte is RGB + Alpha; these bands are all data.
            profile["photometric"] = "MINISBLACK"
        profile.update(profile_extra)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
        return path

    return factory
