"""The model families by ``--model`` name, each checked for what it declares when the
registry is built (at import).

Adding a family (Pix2PixHD, say) is a module of its own holding a
:class:`~geogan.models.base.GANModel` subclass that declares
:data:`~geogan.models.base.DECLARED`, its entry in :data:`_FAMILIES` below, and its name
in :data:`geogan.contract.choices.MODELS` (what the CLI and QGIS list without torch).
The data code reads its ``pairing``, the training code its networks, losses and
checkpoint directions; neither names a family.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence

from geogan.contract import choices
from geogan.contract.layouts import Pairing
from geogan.errors import InputError
from geogan.models import GENERATORS
from geogan.models.base import DECLARED, IMPLEMENTED, GANModel
from geogan.models.cut import CUT, FastCUT
from geogan.models.cyclegan import CycleGAN
from geogan.models.pix2pix import Pix2Pix
from geogan.models.pix2pixhd import Pix2PixHD
from geogan.models.protocol import GeneratorContractError, check_generator

#: The families geogan ships, in any order (the registry takes the order of choices.MODELS).
_FAMILIES: tuple[type[GANModel], ...] = (CycleGAN, Pix2Pix, CUT, FastCUT, Pix2PixHD)


class RegistryError(TypeError):
    """A model family that does not declare what geogan asks of it, or a registry whose
    names differ from the CLI's choices."""


def _problem(cls: type) -> str | None:
    """What is wrong with family ``cls``'s declarations, or None."""
    if not (inspect.isclass(cls) and issubclass(cls, GANModel)):
        return "is not a geogan.models.base.GANModel subclass"
    missing = [a for a in DECLARED if not hasattr(cls, a)]
    if missing:
        return (f"does not declare {', '.join(missing)} (every family states "
                f"{', '.join(DECLARED)}; see geogan.models.base.DECLARED)")
    absent = [m for m in IMPLEMENTED if getattr(cls, m) is getattr(GANModel, m)]
    if absent:
        return f"does not implement {', '.join(absent)}"
    if not isinstance(cls.pairing, Pairing):
        return f"declares pairing {cls.pairing!r}, not a geogan.contract.layouts.Pairing"
    if cls.default_generator not in GENERATORS:
        return (f"declares default_generator {cls.default_generator!r}, not one of "
                f"{', '.join(GENERATORS)}")
    gens = cls.generators
    if not isinstance(gens, Mapping) or "a2b" not in gens \
            or not set(gens) <= set(choices.DIRECTIONS):
        return (f"declares generators {gens!r}; it maps directions ({', '.join(choices.DIRECTIONS)}"
                ", a2b at least) to network keys")
    keys = cls.generator_keys
    if not _strings(keys) or not set(gens.values()) <= set(keys):
        return (f"declares generator_keys {keys!r}; they name the networks G's optimiser "
                f"trains, {', '.join(gens.values())} among them")
    if not isinstance(cls.needs_encoder, bool):
        return f"declares needs_encoder {cls.needs_encoder!r}, not a bool"
    losses = cls.loss_names
    if not _strings(losses) or len(set(losses)) != len(losses):
        return f"declares loss_names {losses!r}, not a tuple of distinct names"
    for panel in cls.plot_panels:
        if len(panel) != 2 or not _strings(panel[1]) or not set(panel[1]) <= set(losses):
            return f"declares plot panel {panel!r}, whose losses are not among its loss_names"
    return _default_generator_problem(cls)


def _strings(value: object) -> bool:
    return isinstance(value, tuple) and bool(value) and all(isinstance(v, str) for v in value)


def _default_generator_problem(cls: type[GANModel]) -> str | None:
    """Build the default generator on the meta device (nothing allocated) and check it."""
    import torch

    with torch.device("meta"):
        net = GENERATORS[cls.default_generator](in_channels=1, out_channels=1, ngf=1)
    try:
        check_generator(net, cls.default_generator, encoder=cls.needs_encoder)
    except GeneratorContractError as exc:
        return f"has a default generator geogan cannot use: {exc}"
    return None


def build_registry(families: Iterable[type[GANModel]],
                   names: Sequence[str] | None = None) -> dict[str, type[GANModel]]:
    """``{name: family}`` in the order of ``names`` (default: as given), each family checked;
    :class:`RegistryError` names the family and what it lacks."""
    found: dict[str, type[GANModel]] = {}
    for cls in families:
        problem = _problem(cls)
        label = f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', cls)}"
        if problem is not None:
            name = getattr(cls, "name", None)
            raise RegistryError(f"model family {name or label!r} ({label}) {problem}")
        if cls.name in found:
            raise RegistryError(f"two model families are named {cls.name!r}")
        found[cls.name] = cls
    if names is None:
        return found
    if set(names) != set(found):
        raise RegistryError(f"the model families ({', '.join(found)}) differ from "
                            f"geogan.contract.choices.MODELS ({', '.join(names)})")
    return {name: found[name] for name in names}


#: Translation models by name (the CLI's --model choices), checked at import.
FAMILIES: dict[str, type[GANModel]] = build_registry(_FAMILIES, choices.MODELS)


def family(name: str) -> type[GANModel]:
    """The family called ``name``; ``KeyError`` naming the choices."""
    if name not in FAMILIES:
        raise KeyError(f"unknown model {name!r}; choose one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def pairing_of(model: str) -> Pairing:
    """The pairing a model needs; ``model`` is a pairing ("paired", "unpaired") or a model
    name, looked up in the model registry. Unknown names raise ``KeyError``."""
    if model in {p.value for p in Pairing}:
        return Pairing(model)
    return family(model).pairing


def data_pairing(model: str) -> Pairing:
    """:func:`pairing_of` for the data code: an unknown model is an :class:`InputError`."""
    try:
        return pairing_of(model)
    except KeyError as exc:
        raise InputError(f"unknown `model` {model!r}; choose one of "
                         f"{', '.join(FAMILIES)}") from exc


def paired_models() -> str:
    """The registered models that need paired data, as text for a message ("pix2pix")."""
    return " or ".join(n for n, f in FAMILIES.items() if f.pairing is Pairing.PAIRED)
