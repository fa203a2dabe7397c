"""The checkpoint metadata schema as typed dataclasses, with its torch-free reader.

A checkpoint is ``NAME.safetensors`` whose header's ``__metadata__["geogan"]`` holds
this JSON (also written beside it as ``NAME.json``)::

    {"format": "geogan-checkpoint", "format_version": 1, "geogan_version": "0.1.0",
     "model": "cyclegan" | "pix2pix" | "cut" | "fastcut",
     "generators": {"a2b": {"key": "G_A2B", "arch": "resnet_9blocks", "kwargs": {...}},
                    "b2a": {...}},                 # pix2pix and CUT have a2b only
     "discriminators": {"D_A": {"arch": "patchgan", "kwargs": {...}}, ...},
     "domains": {"a": {"name": "2009", "bands": 4, "dtype": "uint8", "nodata": 0,
                       "norm": {"lo": [...], "hi": [...], "dtype": "uint8", ...},
                       "band_names": ["red", "green", "blue", "nir"],  # optional
                       "gsd_m": 5.0, "crs": "EPSG:26914"},   # ground resolution, m/px
                 "b": {...}},
     "chip_size": 256, "size_multiple": 4, "epoch": 3, "step": 1200, "total_steps": 4000,
     "losses": {...}, "training": {...}, "inference_only": false}

:func:`read_checkpoint_meta` reads it with ``struct`` and ``json`` only (the QGIS
plugin uses it without torch); :func:`parse_meta` checks the format and version.
Fields this version does not know are kept in ``extra`` and written back.
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .choices import sides_of
from .limits import arch_problem, norm_problem
from .names import RUN_CHECKPOINT_NAME, SIDECAR_SUFFIX

FORMAT = "geogan-checkpoint"
FORMAT_VERSION = 1
#: The key of geogan's JSON in the safetensors header's ``__metadata__``.
HEADER_KEY = "geogan"
#: A safetensors header larger than this is not one geogan wrote.
MAX_HEADER = 100 * 1024 * 1024


class MetadataError(ValueError):
    """A checkpoint's metadata is missing, unreadable, or not geogan's; one line to act on."""


class MetadataValueError(MetadataError):
    """Well-formed metadata with a value geogan refuses (a network too wide, a NaN bound)."""


#: Integer generator arguments checked against :data:`~.limits.ARCH_LIMITS`.
_CHECKED_KWARGS = ("in_channels", "out_channels", "ngf")


@dataclass(frozen=True)
class GeneratorMeta:
    """One generator: its tensor prefix, architecture name and builder arguments."""

    key: str
    arch: str
    kwargs: dict[str, Any]

    @property
    def in_channels(self) -> int:
        return int(self.kwargs["in_channels"])

    @property
    def out_channels(self) -> int:
        return int(self.kwargs["out_channels"])

    @property
    def upsample(self) -> str:
        return str(self.kwargs.get("upsample", "deconv"))

    @property
    def norm(self) -> str:
        return str(self.kwargs.get("norm", "instance"))


@dataclass(frozen=True)
class DomainMeta:
    """One side of the translation: its name, bands, dtype, nodata and normalisation.

    ``bands`` is what training recorded (a count, or the source's band numbers);
    :attr:`band_count` is the number of bands the generator takes or gives. ``gsd_m``
    and ``crs`` are the ground resolution (metres per pixel) and CRS of the data the
    domain was trained on (None in checkpoints of geogan before they were recorded).
    """

    name: str
    norm: dict[str, Any]
    bands: Any = None
    dtype: str = ""
    nodata: float | None = None
    #: What each band is (``["red", "green", "blue"]``): translate names its output so.
    band_names: list[str] | None = None
    gsd_m: float | None = None
    crs: str | None = None
    #: The few flat colours of a map domain (``{"colours": [[r, g, b], ...], "names":
    #: [...]}``, see :mod:`geogan.palette`); None: a continuous domain.
    palette: dict[str, Any] | None = None
    #: Several rasters stacked as one input, in band order: ``[{"source": name, "bands": n}]``.
    stack: list[dict[str, Any]] | None = None

    @property
    def band_count(self) -> int:
        return len(self.norm["lo"])

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DomainMeta:
        norm = dict(d["norm"])
        if not isinstance(norm.get("lo"), list):
            raise TypeError("a domain's 'norm' has no 'lo' list")
        names = d.get("band_names")
        gsd = d.get("gsd_m")
        return cls(name=str(d.get("name", "")), norm=norm, bands=d.get("bands"),
                   dtype=str(d.get("dtype", norm.get("dtype", ""))), nodata=d.get("nodata"),
                   band_names=[str(n) for n in names] if isinstance(names, list) else None,
                   gsd_m=None if gsd is None else float(gsd),
                   crs=None if d.get("crs") is None else str(d["crs"]),
                   palette=dict(d["palette"]) if isinstance(d.get("palette"), dict) else None,
                   stack=list(d["stack"]) if isinstance(d.get("stack"), list) else None)


_KNOWN = ("format", "format_version", "geogan_version", "model", "generators", "discriminators",
          "domains", "chip_size", "size_multiple", "epoch", "step", "total_steps", "losses",
          "training", "inference_only")

#: Fields :meth:`CheckpointMeta.to_json` leaves out when they hold their default.
_OPTIONAL = frozenset({"discriminators", "chip_size", "size_multiple", "epoch", "step",
                       "total_steps", "losses", "training", "inference_only"})


@dataclass(frozen=True)
class CheckpointMeta:
    """Everything a checkpoint says about itself."""

    model: str
    generators: dict[str, GeneratorMeta]
    domains: dict[str, DomainMeta]
    geogan_version: str = ""
    format_version: int = FORMAT_VERSION
    discriminators: dict[str, Any] = field(default_factory=dict)
    chip_size: int | None = None
    size_multiple: int | None = None
    epoch: int | None = None
    step: int | None = None
    total_steps: int | None = None
    losses: dict[str, float] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    inference_only: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def directions(self) -> tuple[str, ...]:
        return tuple(sorted(self.generators))

    def generator(self, direction: str) -> GeneratorMeta:
        """The generator of ``direction``; KeyError naming the ones there are."""
        if direction not in self.generators:
            raise KeyError(f"no '{direction}' generator; available: "
                           f"{', '.join(self.directions) or 'none'}")
        return self.generators[direction]

    def sides(self, direction: str) -> tuple[DomainMeta, DomainMeta]:
        """(source, target) domains of ``direction``."""
        src, dst = sides_of(direction)
        return self.domains[src], self.domains[dst]

    def input_bands(self, direction: str) -> int:
        return self.sides(direction)[0].band_count

    def output_bands(self, direction: str) -> int:
        return self.sides(direction)[1].band_count

    def to_json(self) -> dict[str, Any]:
        """The JSON written to the checkpoint; optional fields left at their default (None,
        empty, False: an imported model has no losses, a trained one is not inference-only)
        are left out, as :meth:`from_json` reads them back."""
        out: dict[str, Any] = {"format": FORMAT, **self.extra}
        for name in _KNOWN[1:]:
            value = getattr(self, name)
            if name == "generators":
                value = {k: asdict(g) for k, g in value.items()}
            elif name == "domains":
                value = {k: {f: v for f, v in asdict(d).items()
                             if (v is not None and v != "") or f == "nodata"}
                         for k, d in value.items()}
            elif name in _OPTIONAL and (value is None or value is False or value == {}):
                continue
            out[name] = value
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CheckpointMeta:
        """Typed metadata from its JSON; KeyError/TypeError/ValueError if malformed, and
        :class:`MetadataValueError` for values geogan refuses (see :mod:`.limits`): a
        generator wider than it builds, a normalisation that is not finite in float32."""
        gens = d["generators"]
        if not isinstance(gens, dict):
            raise TypeError("'generators' is not a mapping")
        generators = {k: GeneratorMeta(str(g["key"]), str(g["arch"]), dict(g["kwargs"]))
                      for k, g in gens.items()}
        domains = {k: DomainMeta.from_json(v) for k, v in d["domains"].items()}
        for key, domain in domains.items():
            problem = norm_problem(domain.norm.get("dtype"), domain.norm["lo"],
                                   domain.norm.get("hi"))
            if problem is not None:
                raise MetadataValueError(f"the normalisation of domain {key} is unusable "
                                         f"({problem})")
        for direction, gen in generators.items():
            _check_generator(direction, gen, domains)
        return cls(
            model=str(d.get("model", "")),
            generators=generators,
            domains=domains,
            geogan_version=str(d.get("geogan_version", "")),
            format_version=int(d.get("format_version", 0)),
            discriminators=dict(d.get("discriminators") or {}),
            chip_size=_int_or_none(d.get("chip_size")),
            size_multiple=_int_or_none(d.get("size_multiple")),
            epoch=_int_or_none(d.get("epoch")), step=_int_or_none(d.get("step")),
            total_steps=_int_or_none(d.get("total_steps")),
            losses=dict(d.get("losses") or {}), training=dict(d.get("training") or {}),
            inference_only=bool(d.get("inference_only", False)),
            extra={k: v for k, v in d.items() if k not in _KNOWN})


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _check_generator(direction: str, gen: GeneratorMeta, domains: dict[str, DomainMeta]) -> None:
    """Refuse (:class:`MetadataValueError`) a generator wider than geogan builds, or whose
    bands differ from its domains' normalisation: before any network is built from it."""
    for name in _CHECKED_KWARGS:  # those not given take the builder's defaults
        if name in gen.kwargs:
            problem = arch_problem(name, gen.kwargs[name])
            if problem is not None:
                raise MetadataValueError(f"the {direction} generator's {problem}")
    sides = sides_of(direction)
    for name, side in zip(("in_channels", "out_channels"), sides, strict=True):
        domain = domains.get(side)
        if name in gen.kwargs and domain is not None \
                and domain.band_count != gen.kwargs[name]:
            raise MetadataValueError(f"the {direction} generator's {name} is "
                                     f"{gen.kwargs[name]} but domain {side} normalises "
                                     f"{domain.band_count} band(s)")


def resolve_checkpoint(path: str | Path) -> Path:
    """A ``.safetensors`` file, its ``.json`` sidecar, or a run folder -> the weights file."""
    p = Path(path)
    if p.is_dir():
        p = p / RUN_CHECKPOINT_NAME
    elif p.suffix == SIDECAR_SUFFIX:
        p = p.with_suffix(".safetensors")
    if not p.is_file():
        raise MetadataError(f"checkpoint {path} not found; give a .safetensors file written "
                            "by 'geogan train' or its run folder")
    return p


def read_header_text(p: Path) -> str | None:
    """geogan's JSON text from a safetensors header, None when the header has none."""
    try:
        with open(p, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            if not 0 < size <= MAX_HEADER:
                raise ValueError("bad header size")
            header = json.loads(fh.read(size).decode("utf-8"))
        text = (header.get("__metadata__") or {}).get(HEADER_KEY)
    except RecursionError as exc:
        raise MetadataError(f"the header of checkpoint {p} is malformed JSON (nested too "
                            "deeply); use another checkpoint") from exc
    except (OSError, ValueError, struct.error, AttributeError) as exc:
        raise MetadataError(f"checkpoint {p} is truncated or not a safetensors file ({exc}); "
                            "use another checkpoint or retrain") from exc
    return text if isinstance(text, str) else None


def parse_meta(p: Path, text: str | None) -> dict[str, Any]:
    """The metadata JSON of checkpoint ``p`` (``text`` from its header, else its sidecar).

    Checks that it is geogan's and not from a newer format version.
    """
    if text is None:
        sidecar = p.with_suffix(SIDECAR_SUFFIX)
        if not sidecar.is_file():
            raise MetadataError(f"{p} has no geogan metadata; it was not written by geogan")
        text = sidecar.read_text(encoding="utf-8")
    try:
        meta = json.loads(text)
    except RecursionError as exc:
        raise MetadataError(f"metadata of {p} is malformed JSON (nested too deeply); "
                            "use another checkpoint") from exc
    except ValueError as exc:
        raise MetadataError(f"metadata of {p} is not valid JSON ({exc}); "
                            "use another checkpoint") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise MetadataError(f"{p} is not a geogan checkpoint")
    try:
        version = int(meta.get("format_version", 0))
    except (TypeError, ValueError):
        version = FORMAT_VERSION + 1
    if version > FORMAT_VERSION:
        raise MetadataError(f"{p} was written by a newer geogan "
                            f"({meta.get('geogan_version')}); upgrade geogan to read it")
    return meta


def read_checkpoint_meta(path: str | Path) -> CheckpointMeta:
    """The typed metadata of a checkpoint (file, sidecar or run folder), without torch."""
    p = resolve_checkpoint(path)
    return typed_meta(p, parse_meta(p, read_header_text(p)))


def typed_meta(p: Path, meta: dict[str, Any]) -> CheckpointMeta:
    """:meth:`CheckpointMeta.from_json` of checkpoint ``p``'s metadata, its faults as one
    :class:`MetadataError` line naming ``p``."""
    try:
        return CheckpointMeta.from_json(meta)
    except MetadataValueError as exc:
        raise MetadataValueError(f"checkpoint {p} cannot be used: {exc}; use a checkpoint "
                                 "written by geogan") from exc
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MetadataError(f"metadata of checkpoint {p} does not describe a geogan model "
                            f"({type(exc).__name__}: {exc}); use a checkpoint written by "
                            "geogan") from exc
