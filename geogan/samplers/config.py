"""How windows are drawn from rasters: the ``geogan train`` options for raster inputs
(:class:`WindowConfig`), checked as ``geogan tile`` checks them."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from geogan.contract.options import TRAIN
from geogan.errors import InputError


@dataclass(frozen=True)
class WindowConfig:
    """How windows are drawn from rasters (``geogan train`` options for raster inputs).

    ``aoi`` limits both domains, ``aoi_a``/``aoi_b`` one each. ``max_nodata``/
    ``min_std``, ``crs``/``res``/``align_to``, ``max_upsample`` and ``resampling`` mean
    what they mean for ``geogan tile``. Chip folders ignore none of this silently: giving any of it
    with chips is an error (they were filtered when tiled).
    """

    aoi: Path | None = TRAIN.default_of("aoi")
    aoi_a: Path | None = TRAIN.default_of("aoi_a")
    aoi_b: Path | None = TRAIN.default_of("aoi_b")
    max_nodata: float = TRAIN.default_of("max_nodata")
    min_std: float = TRAIN.default_of("min_std")
    crs: str | None = TRAIN.default_of("crs")
    res: float | None = TRAIN.default_of("res")
    align_to: Path | None = TRAIN.default_of("align_to")
    max_upsample: float = TRAIN.default_of("max_upsample")
    resampling: str = TRAIN.default_of("resampling")
    #: More rasters stacked with each A (B) raster, one per layer (:mod:`geogan.stack`).
    a_stack: tuple[Path, ...] = ()
    b_stack: tuple[Path, ...] = ()

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The train options that say how windows are drawn (this class's fields)."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def take(cls, options: dict[str, Any]) -> WindowConfig:
        """The window options popped out of ``options`` (a command's values by name);
        those not there keep their defaults."""
        return cls(**{name: options.pop(name) for name in cls.names() if name in options})

    def __post_init__(self) -> None:
        for name in ("aoi", "aoi_a", "aoi_b", "align_to"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        for name in ("a_stack", "b_stack"):
            value = getattr(self, name) or ()
            value = (value,) if isinstance(value, (str, Path)) else value
            object.__setattr__(self, name, tuple(Path(v) for v in value))
        if self.aoi is not None and (self.aoi_a is not None or self.aoi_b is not None):
            raise InputError("`aoi` limits both domains; do not combine it with "
                             "`aoi_a`/`aoi_b`")
        self.tile_config()  # the tile options' own checks, with tile's messages

    @property
    def is_default(self) -> bool:
        return self == WindowConfig()

    def given(self) -> list[str]:
        """The options set to something else than their default, as ```name``` (messages)."""
        default = WindowConfig()
        return [f"`{f.name}`" for f in fields(self)
                if getattr(self, f.name) != getattr(default, f.name)]

    def aoi_for(self, domain: str) -> tuple[Path | None, str]:
        """The AOI of domain ``"a"`` or ``"b"`` and the option that gave it."""
        own = self.aoi_a if domain == "a" else self.aoi_b
        if own is not None:
            return own, f"`aoi_{domain}`"
        return self.aoi, "`aoi`"

    def tile_config(self) -> Any:
        """The :class:`geogan.tiling.TileConfig` whose views and filters the windows share."""
        from geogan.tiling import TileConfig

        return TileConfig(max_nodata=self.max_nodata, min_std=self.min_std, crs=self.crs,
                          res=self.res, align_to=self.align_to,
                          max_upsample=self.max_upsample, resampling=self.resampling)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = [str(v) if str(v).startswith("@") else str(Path(v).absolute())
                         for v in value]
            out[f.name] = str(Path(value).absolute()) if isinstance(value, Path) else value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> WindowConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in names})
