"""STAC records of translated rasters (``geogan translate --stac``).

Each output gets a STAC Item beside it, ``NAME.stac.json`` for ``NAME.tif``, built by
rio-stac from the written raster (projection extension: EPSG code or WKT2,
``proj:transform``, ``proj:shape``, footprint in WGS84; raster extension: bands, data
type, nodata) and completed with the processing extension (``processing:software``,
``processing:lineage`` (the provenance's sentence), ``processing:datetime``),
``geogan:synthetic``, and ``derived_from`` links to the source raster and the
checkpoint. The raster is the Item's ``data`` asset, linked relatively so the two
move together; a confidence raster written beside it (``confidence``) is its
``confidence`` asset (roles ``metadata`` and ``quality``, with its bands' statistics) and
the raster's QGIS style its ``confidence_style`` asset. A batch (an output folder) also
gets ``collection.json``, a Collection that lists its Items.

Items are written like every output: to a temporary renamed into place when complete
(a failed write leaves no Item), beside a local output or into the same local zip.
They need the optional ``stac`` extra (``pip install geogan[stac]``: pystac, rio-stac).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geogan.errors import InputError
from geogan.inputs import GdalOutput, GdalPath
from geogan.provenance import Provenance, read_provenance

log = logging.getLogger(__name__)

#: The suffix of the Item written beside each output (``a.tif`` -> ``a.stac.json``).
ITEM_SUFFIX = ".stac.json"
#: The Collection a batch writes into its output folder.
COLLECTION_NAME = "collection.json"
PROCESSING_EXTENSION = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
#: The asset keys and roles of the confidence raster beside an output and of its QGIS style
#: (STAC's ``metadata`` role: it describes the data asset, not the scene; ``quality``: what
#: it says about the data).
CONFIDENCE_ASSET = "confidence"
CONFIDENCE_ROLES = ("metadata", "quality")
CONFIDENCE_STYLE_ASSET = "confidence_style"


def item_path(output: Path) -> Path:
    """Where the Item of ``output`` goes: ``out.tif`` -> ``out.stac.json`` beside it."""
    if isinstance(output, GdalPath):
        return type(output)(output[: len(output) - len(output.name)] + output.stem
                            + ITEM_SUFFIX)
    return output.with_name(output.stem + ITEM_SUFFIX)


def check_available() -> None:
    """Fail in one line when pystac or rio-stac is not installed."""
    try:
        import pystac  # noqa: F401
        import rio_stac  # noqa: F401
    except ImportError as exc:
        raise InputError(f"`stac` needs pystac and rio-stac ({exc.name} is not installed); "
                         "install them with pip install 'geogan[stac]'") from exc


def check_item_output(output: Path, overwrite: bool) -> None:
    """Refuse, before any work, an Item that cannot be written or would replace a file."""
    from geogan.fileio import check_output_file

    if isinstance(output, GdalOutput) and output.local_zip() is None:
        raise InputError(f"`stac` writes each Item beside its output on a local disk or in a "
                         f"local zip, not at {output}; translate to a local file and upload "
                         "both, or drop `stac`")
    check_output_file(item_path(output), overwrite)


def build_item(output: Path, source: Any, checkpoint: Path) -> Any:
    """The :class:`pystac.Item` of a translated raster ``output`` (read from the file)."""
    import pystac
    import rasterio
    from rio_stac import create_stac_item

    with rasterio.open(output) as src, warnings.catch_warnings():
        # rio-stac tries TIFFTAG_DATETIME as an ISO date first and warns that it is not one
        warnings.simplefilter("ignore", UserWarning)
        provenance = read_provenance(src) or Provenance(synthetic=False)
        when = _when(provenance.created)
        item = create_stac_item(
            src, input_datetime=when, id=output.stem, asset_name="data",
            asset_href=f"./{output.name}", asset_roles=["data"], with_proj=True,
            with_raster=True, geom_densify_pts=21, raster_max_size=256,
            properties=_properties(provenance, when))
    item.stac_extensions.append(PROCESSING_EXTENSION)
    item.add_link(pystac.Link("derived_from", _href(source),
                              media_type=pystac.MediaType.GEOTIFF,
                              title=f"source raster {Path(str(source)).name}"))
    item.add_link(pystac.Link("derived_from", _href(checkpoint),
                              media_type="application/octet-stream",
                              title=f"geogan checkpoint {checkpoint.name} (SHA-256 "
                                    f"{provenance.checkpoint_sha256 or 'unknown'})"))
    return item


def add_confidence_assets(item: Any, output: Path) -> None:
    """List the confidence raster beside ``output`` and its QGIS style, where they exist,
    as assets of ``output``'s Item (linked relatively, like the data asset)."""
    import pystac
    import rasterio
    from rio_stac.stac import get_media_type, get_raster_info

    from geogan.contract.names import CONFIDENCE_SUFFIX
    from geogan.qml import style_path_for

    if isinstance(output, GdalPath):
        return  # confidence rasters are written in local folders only
    raster = output.with_name(Path(output.name).stem + CONFIDENCE_SUFFIX)
    if not raster.is_file():
        return
    with rasterio.open(raster) as src, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        media_type = get_media_type(src)
        bands = get_raster_info(src, max_size=256)
    item.add_asset(CONFIDENCE_ASSET, pystac.Asset(
        f"./{raster.name}", title="Confidence of the translation",
        description="How sure the model is of each pixel of the data asset, from 1 (sure) "
                    "to 0 (guessing)",
        media_type=media_type, roles=list(CONFIDENCE_ROLES),
        extra_fields={"raster:bands": bands}))
    style = style_path_for(raster)
    if style.is_file():
        item.add_asset(CONFIDENCE_STYLE_ASSET, pystac.Asset(
            f"./{style.name}", title="QGIS layer style of the confidence raster",
            media_type="application/xml", roles=["style"]))


def _properties(provenance: Provenance, when: dt.datetime) -> dict[str, Any]:
    props: dict[str, Any] = {
        "title": f"{provenance.target_domain or 'translated'} from {provenance.input}".strip(),
        "description": provenance.description,
        "processing:lineage": provenance.description,
        "processing:software": {"geogan": provenance.version,
                                **({"torch": provenance.torch_version}
                                   if provenance.torch_version else {})},
        "processing:datetime": when.isoformat().replace("+00:00", "Z"),
        "created": when.isoformat().replace("+00:00", "Z"),
        "geogan:synthetic": provenance.synthetic,
    }
    if provenance.checkpoint_sha256:
        props["geogan:checkpoint_sha256"] = provenance.checkpoint_sha256
    return props


def _when(iso: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _href(path: Any) -> str:
    if isinstance(path, GdalPath):
        return str(path)
    return str(Path(path).resolve())


def write_json(path: Path, data: dict[str, Any], overwrite: bool) -> Path:
    """Write ``data`` to ``path`` atomically (a local file or a member of a local zip)."""
    from geogan.fileio import atomic_output

    text = json.dumps(data, indent=2) + "\n"
    with atomic_output(path, overwrite=overwrite) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return path


def write_collection(folder: Path, items: Sequence[Any], overwrite: bool) -> Path:
    """Write ``folder/collection.json``, a Collection listing ``items`` (pystac Items
    written beside their rasters in ``folder``)."""
    import pystac

    from geogan import __version__

    boxes = [i.bbox for i in items if i.bbox]
    bbox = [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
            max(b[3] for b in boxes)] if boxes else [-180.0, -90.0, 180.0, 90.0]
    times = sorted(i.datetime for i in items if i.datetime is not None)
    extent = pystac.Extent(pystac.SpatialExtent([bbox]),
                           pystac.TemporalExtent([[times[0], times[-1]] if times
                                                  else [None, None]]))
    synthetic = all(i.properties.get("geogan:synthetic") for i in items)
    collection = pystac.Collection(
        id=folder.name or "geogan",
        description=(f"{len(items)} rasters translated by geogan"
                     + ("; synthetic imagery, not observations" if synthetic else "")),
        extent=extent, license="other", extra_fields={"geogan:version": __version__})
    for item in items:
        collection.add_link(pystac.Link("item", f"./{item.id}{ITEM_SUFFIX}",
                                        media_type=pystac.MediaType.GEOJSON))
    target = folder / COLLECTION_NAME
    if isinstance(target, GdalPath) and target.exists():
        log.info("kept %s: a zip member is never replaced", target)
        return target
    write_json(target, collection.to_dict(include_self_link=False, transform_hrefs=False),
               overwrite or _is_geogan_collection(target))
    log.info("wrote STAC Collection %s (%d items)", target, len(items))
    return target


def _is_geogan_collection(path: Path) -> bool:
    """Whether ``path`` is a Collection geogan wrote (a batch's index, rewritten each run)."""
    if isinstance(path, GdalPath):
        return True  # a zip member is never replaced anyway: a rerun fails there
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("type") == "Collection" \
        and "geogan:version" in data


def check_collection_output(folder: Path, overwrite: bool) -> None:
    """Refuse, before any work, a ``collection.json`` that is not geogan's (without overwrite)."""
    from geogan.fileio import check_output_file

    target = folder / COLLECTION_NAME
    if not overwrite and not isinstance(target, GdalPath) and Path(target).exists() \
            and not _is_geogan_collection(target):
        check_output_file(target, overwrite)


def write_records(pairs: Sequence[tuple[Any, Path]], done: Sequence[Path], checkpoint: Any,
                  overwrite: bool, folder: Path | None, *, refreshed: Sequence[Path] = (),
                  confidence: bool = False) -> list[Path]:
    """Items beside the outputs of ``pairs`` (input, output): those translated now
    (``done``) and those lacking one; with ``folder`` (a batch) also its Collection.
    ``refreshed`` are kept outputs that got a raster beside them now: their Item is written
    again where geogan wrote it. With ``confidence`` each Item lists the confidence raster
    beside its output (:func:`add_confidence_assets`). Return the Items' paths."""
    from geogan.checkpoint import resolve_checkpoint_path

    ckpt = resolve_checkpoint_path(checkpoint)
    fresh = set(map(os.fspath, done))
    again = set(map(os.fspath, refreshed))
    items, paths = [], []
    for src, dst in pairs:
        item = build_item(dst, src, ckpt)
        if confidence:
            add_confidence_assets(item, dst)
        target = item_path(dst)
        replace = os.fspath(dst) in again and _is_geogan_item(target)
        if os.fspath(dst) in fresh or not target.exists() or replace:
            write_json(target, item.to_dict(include_self_link=False, transform_hrefs=False),
                       overwrite or replace)
            log.info("wrote STAC Item %s", target)
        elif os.fspath(dst) in again:
            log.info("kept %s: it is not an Item geogan wrote", target)
        items.append(item)
        paths.append(target)
    if folder is not None:
        write_collection(folder, items, overwrite)
    return paths


def _is_geogan_item(path: Path) -> bool:
    """Whether ``path`` is an Item geogan wrote (a Feature with ``geogan:synthetic``)."""
    if isinstance(path, GdalPath):
        return False  # a zip member is never replaced
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("type") == "Feature" \
        and "geogan:synthetic" in (data.get("properties") or {})
