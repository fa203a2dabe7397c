"""What a training run is asked to do: :class:`TrainConfig`, its validation, and the
resume policy that rebuilds a run's config from its folder."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geogan.checkpoint import read_metadata
from geogan.contract.choices import GAN_MODES, NET_NORMS, TRAIN_PRECISIONS, UPSAMPLES
from geogan.contract.layouts import Pairing
from geogan.contract.limits import arch_problem, range_text
from geogan.contract.names import TRAIN_STATE_NAME, TRAIN_STATE_PENDING
from geogan.contract.options import TRAIN
from geogan.datasets import DEFAULT_CACHE_MB
from geogan.errors import CheckpointError, InputError, require_choice
from geogan.models import DISCRIMINATORS, GENERATORS, min_crop, settings_args
from geogan.models.gan import GAN_MODELS, GANSettings
from geogan.models.registry import paired_models
from geogan.samplers import WindowConfig, as_inputs


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``geogan train`` needs; see the CLI help for each option.

    ``generator=None`` picks the paper's default for the model (ResNet-9 for
    CycleGAN, U-Net 256 for pix2pix). ``max_steps`` replaces ``epochs`` as the
    length of the run (the learning-rate schedule spans it). ``workers=None``
    uses loader worker processes on CUDA and none on the CPU. ``a``/``b`` are a chip
    folder each, or rasters (one path or several: files, globs, VRTs, ``@LIST``) that
    are sampled in random windows as ``windows`` says (:mod:`geogan.samplers`).
    """

    a: Path | tuple[Path, ...] | None
    b: Path | tuple[Path, ...] | None
    output: Path
    model: str = TRAIN.default_of("model")
    direction: str = TRAIN.default_of("direction")
    epochs: int = TRAIN.default_of("epochs")
    max_steps: int | None = TRAIN.default_of("max_steps")
    batch_size: int = TRAIN.default_of("batch_size")
    crop: int = TRAIN.default_of("crop")
    lr: float = TRAIN.default_of("lr")
    beta1: float = 0.5
    seed: int = TRAIN.default_of("seed")
    augment: bool = TRAIN.default_of("augment")
    name_a: str | None = TRAIN.default_of("name_a")
    name_b: str | None = TRAIN.default_of("name_b")
    device: str = TRAIN.default_of("device")
    precision: str = TRAIN.default_of("precision")
    compile: bool = TRAIN.default_of("compile")
    workers: int | None = TRAIN.default_of("workers")
    log_every: int = TRAIN.default_of("log_every")
    preview_every: int = TRAIN.default_of("preview_every")
    save_every: int = TRAIN.default_of("save_every")
    cache_mb: float = DEFAULT_CACHE_MB
    resume: bool = TRAIN.default_of("resume")
    overwrite: bool = TRAIN.default_of("overwrite")
    windows: WindowConfig = WindowConfig()
    #: The architecture and loss weights; given flat (``TrainConfig(ngf=32)``), read flat
    #: (``config.ngf``) or whole (``config.gan``).
    gan: GANSettings = GANSettings()

    def __getattr__(self, name: str) -> Any:  # only for names that are no field
        if name in _GAN_NAMES:
            return getattr(self.gan, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every option by its flat name: the fields but ``gan``, and the GAN settings'."""
        return (*(f.name for f in dataclasses.fields(cls) if f.name != "gan"), *_GAN_NAMES)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.update(out.pop("gan"))  # flat, as run folders have always stored it
        for key in ("a", "b", "output", "vgg_weights"):  # absolute: --resume from anywhere
            value = getattr(self, key)
            if isinstance(value, tuple):
                out[key] = [str(Path(v).absolute()) for v in value]
            else:
                out[key] = None if value is None else str(Path(value).absolute())
        out["windows"] = self.windows.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainConfig:
        names = set(cls.names())
        kwargs = {k: v for k, v in data.items() if k in names}
        kwargs.setdefault("upsample", "deconv")  # runs from before the choice: deconv
        for key in ("a", "b", "output"):
            if isinstance(kwargs.get(key), list):
                kwargs[key] = tuple(Path(v) for v in kwargs[key])
            elif kwargs.get(key) is not None:
                kwargs[key] = Path(kwargs[key])
        kwargs["windows"] = WindowConfig.from_json(kwargs.get("windows"))
        return cls(**kwargs)

    @property
    def inputs(self) -> list[Path]:
        """The paths given as ``a`` and ``b``."""
        return [*as_inputs(self.a), *as_inputs(self.b)]

    def settings(self) -> GANSettings:
        """The architecture and loss part of the config, its generator resolved."""
        return dataclasses.replace(
            self.gan, generator=self.gan.generator or GAN_MODELS[self.model].default_generator)


_GAN_NAMES: tuple[str, ...] = GANSettings.names()


def _taking_flat_gan_settings(init: Callable[..., None]) -> Callable[..., None]:
    """The dataclass's ``__init__``, also taking the GAN settings flat (``ngf=32``) and
    applying them over ``gan`` (so :func:`dataclasses.replace` works with either)."""
    @functools.wraps(init)
    def __init__(self: TrainConfig, *args: Any, **kwargs: Any) -> None:
        flat = {name: kwargs.pop(name) for name in _GAN_NAMES if name in kwargs}
        if flat:
            kwargs["gan"] = dataclasses.replace(kwargs.get("gan", GANSettings()), **flat)
        init(self, *args, **kwargs)
    return __init__


TrainConfig.__init__ = _taking_flat_gan_settings(TrainConfig.__init__)  # type: ignore[method-assign]


#: Fields a resumed run may change; all others define the run and must stay as they were.
RESUME_MAY_CHANGE = frozenset({
    "a", "b", "output", "epochs", "max_steps", "device", "precision", "compile", "workers",
    "log_every", "preview_every", "save_every", "cache_mb", "resume", "overwrite"})


def validate_config(config: TrainConfig) -> None:
    """Raise :class:`InputError` for an option out of range (before touching any file)."""
    def positive(name: str, value: float | None, allow_none: bool = False) -> None:
        if value is None and allow_none:
            return
        if value is None or value <= 0:
            raise InputError(f"`{name}` must be positive, got {value}")

    require_choice("model", config.model, GAN_MODELS)
    for name, value, choices in (
            ("generator", config.generator or GAN_MODELS[config.model].default_generator,
             GENERATORS),
            ("discriminator", config.discriminator, DISCRIMINATORS),
            ("norm", config.norm, NET_NORMS), ("gan_mode", config.gan_mode, GAN_MODES),
            ("upsample", config.upsample, UPSAMPLES),
            ("precision", config.precision, TRAIN_PRECISIONS),
            ("direction", config.direction, TRAIN["direction"].choices)):
        require_choice(name, value, choices)
    if config.direction != TRAIN.default_of("direction") \
            and GAN_MODELS[config.model].pairing is not Pairing.PAIRED:
        raise InputError(f"`direction` {config.direction} needs a paired model (`model` "
                         f"{paired_models()}); to train {config.model} the other way, swap "
                         "`a` and `b`")
    for name in ("epochs", "batch_size", "crop", "n_layers", "lr",
                 "log_every", "preview_every", "save_every", "nce_patches", "num_d"):
        positive(name, getattr(config, name))
    for name in ("ngf", "ndf"):  # bounded before any network is built
        if arch_problem(name, getattr(config, name)) is not None:
            raise InputError(f"`{name}` must be from {range_text(name)}, got "
                             f"{getattr(config, name)}")
    _check_crop(config)
    positive("max_steps", config.max_steps, allow_none=True)
    positive("lambda_nce", config.lambda_nce, allow_none=True)
    if config.workers is not None and config.workers < 0:
        raise InputError(f"`workers` must be 0 or more, got {config.workers}")
    for name in ("lambda_cycle", "lambda_identity", "lambda_l1", "pool_size", "lambda_feat"):
        if getattr(config, name) < 0:
            raise InputError(f"`{name}` must be 0 or more")
    if not 0 <= config.beta1 < 1:
        raise InputError(f"`beta1` must be in [0, 1), got {config.beta1}")


def _check_crop(config: TrainConfig) -> None:
    """Refuse a crop too small for the networks (their feature maps would shrink to nothing)."""
    generator = config.generator or GAN_MODELS[config.model].default_generator
    reach = GAN_MODELS[config.model].discriminator_reach(config.settings())
    need, multiple = min_crop(generator, config.discriminator, config.n_layers, reach)
    if config.crop < need:
        # a layer count the user set is named as the option; the default in words, which
        # read alike in every front end (the QGIS dialogs do not offer `n_layers`)
        layers = ""
        if "n_layers" in settings_args(config.discriminator):
            layers = f" with `n_layers` {config.n_layers}" \
                if config.n_layers != TRAIN.default_of("n_layers") \
                else f" ({config.n_layers} layers)"
        scales = f" at {reach}x coarser scale" if reach > 1 else ""
        raise InputError(f"`crop` {config.crop} is too small for generator {generator} and "
                         f"discriminator {config.discriminator}{layers}{scales}; use at least "
                         f"{need}"
                         + (f", a multiple of {multiple}" if multiple > 1 else ""))


def resume_config(output: str | os.PathLike[str], **overrides: Any) -> TrainConfig:
    """The config a run in ``output`` was started with, with ``overrides`` applied.

    Only fields in :data:`RESUME_MAY_CHANGE` may differ from the stored values
    (data folders, length of the run, device, precision, workers, intervals).
    """
    stored = _stored_config(Path(output))
    unknown = set(overrides) - set(TrainConfig.names())
    if unknown:
        raise InputError(f"unknown training options {sorted(unknown)}")
    config = dataclasses.replace(stored, output=Path(output), resume=True, overwrite=False,
                                 **overrides)
    return _merge_resume(config, stored)


def merge_stored(config: TrainConfig) -> TrainConfig:
    """``config`` of a resumed run, with the run-defining fields of the run in its output."""
    return _merge_resume(config, _stored_config(Path(config.output)))


def _stored_config(out: Path) -> TrainConfig:
    if not out.exists():  # a job killed while replacing it may have moved it aside
        from geogan.fileio import remove_leftovers

        remove_leftovers(Path(os.path.realpath(out)))
    state = out / TRAIN_STATE_NAME
    if not state.is_file() and (out / TRAIN_STATE_PENDING).is_file():
        state = out / TRAIN_STATE_PENDING
    state_meta = read_metadata(state)
    try:
        return TrainConfig.from_json(state_meta["config"])
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"{out / TRAIN_STATE_NAME} holds no training config; it cannot "
                              "be resumed") from exc


def _merge_resume(config: TrainConfig, stored: TrainConfig) -> TrainConfig:
    """Fields that define the run come from ``stored``; giving another value is an error."""
    defaults = TrainConfig(a=None, b=None, output=config.output)
    changes: dict[str, Any] = {}
    for name in TrainConfig.names():
        new, old = getattr(config, name), getattr(stored, name)
        if name in RESUME_MAY_CHANGE:
            changes[name] = old if name in ("a", "b") and new is None else new
        elif new != old and new != getattr(defaults, name):
            raise InputError(f"`{name}` {new} differs from the run's "
                             f"{old}; a resumed run keeps its settings (start a new run to "
                             "change it)")
    return dataclasses.replace(stored, **changes)

