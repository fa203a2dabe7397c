"""What a translation records about itself, and the ground-resolution guard.

:func:`translation_provenance` fills the :class:`~geogan.provenance.Provenance` written
into every output; :func:`check_ground` compares the input's ground resolution with the
one the model learned its source domain at (:mod:`geogan.ground`) and warns in one line
when they differ by more than :data:`geogan.ground.RATIO_RANGE` allows.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from geogan.checkpoint import LoadedGenerator
from geogan.contract.checkpoint import DomainMeta
from geogan.ground import dataset_resolution, format_gsd, ratio_warning
from geogan.normstats import NormStats
from geogan.provenance import Provenance, file_facts, read_provenance, sha256_file, utc_now
from geogan.translate.config import TranslateConfig

log = logging.getLogger(__name__)

#: The option that translates at the model's ground resolution (its CLI flag).
AT_MODEL_RESOLUTION = "`at_model_resolution`"


def _domain_name(domain: DomainMeta | None) -> str:
    return domain.name if domain is not None else ""


def model_gsd(generator: LoadedGenerator) -> float | None:
    """Metres per pixel of the data the generator's source domain was trained on, if known."""
    source = generator.sides()[0]
    return None if source is None else source.gsd_m


def check_ground(generator: LoadedGenerator, src: Any, name: str,
                 config: TranslateConfig) -> tuple[float | None, float | None]:
    """``(input GSD, model GSD)`` in m/px; logs one warning when they do not match.

    With ``config.at_model_resolution`` there is nothing to warn about: the input is
    translated at the model's resolution. A checkpoint without a recorded resolution
    (written before geogan recorded it) is accepted; with the option it is an error
    raised by the caller.
    """
    here, learned = dataset_resolution(src), model_gsd(generator)
    if config.at_model_resolution:
        if here is not None and learned is not None:
            log.info("%s: %s pixels, translated at the model's %s and resampled back", name,
                     format_gsd(here), format_gsd(learned))
        return here, learned
    message = ratio_warning(name, here, learned, _domain_name(generator.sides()[0])
                            or "its source domain", AT_MODEL_RESOLUTION)
    if message:
        log.warning(message)
    return here, learned


def norm_source(generator: LoadedGenerator, config: TranslateConfig,
                stats: NormStats | None) -> tuple[str, str]:
    """``(normalisation mode, where its statistics came from)`` for the provenance."""
    if stats is None:
        if config.norm == "window":
            return "window", "each window its own (as in training)"
        return config.norm, "none needed: the generator has no instance normalisation"
    if config.stats:
        return stats.mode, f"statistics file {Path(config.stats).name}"
    if config.shared_stats:
        return stats.mode, "estimated over all inputs of the batch together"
    return stats.mode, "estimated from the input"


def translation_provenance(generator: LoadedGenerator, input_path: str | os.PathLike[str],
                           config: TranslateConfig, precision: str,
                           stats: NormStats | None, input_tags: dict[str, str],
                           input_gsd: float | None = None) -> Provenance:
    """The provenance of translating ``input_path`` with ``generator`` as ``config`` says."""
    import torch

    source, target = generator.sides()
    spec = generator.generator_meta
    path = generator.path
    size, modified = file_facts(input_path)
    norm, where = norm_source(generator, config, stats)
    name = getattr(input_path, "name", None) or Path(os.fspath(input_path)).name
    return Provenance(
        model=generator.checkpoint.model if generator.checkpoint else "",
        generator=spec.arch if spec else "",
        checkpoint=path.name if path is not None else "",
        checkpoint_sha256=sha256_file(path) if path is not None else "",
        direction=generator.direction, source_domain=_domain_name(source),
        target_domain=_domain_name(target), input=name, input_size=size,
        input_modified=modified, input_synthetic=read_provenance(input_tags) is not None,
        norm=norm, norm_stats=where, precision=precision, tile=config.tile,
        overlap=config.overlap, input_gsd_m=None if input_gsd is None else round(input_gsd, 4),
        model_gsd_m=model_gsd(generator), at_model_resolution=config.at_model_resolution,
        torch_version=torch.__version__, created=utc_now())
