"""The contract (geogan.contract): one statement of each shared fact, and what derives from it."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from geogan.cli import main
from geogan.contract import checkpoint as schema
from geogan.contract import messages, names, protocol
from geogan.contract.options import COMMANDS, TILE, TRAIN, TRANSLATE
from geogan.errors import InputError, OutputError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "geogan" / "sample_data" / "pretrained" / "naip_2009_to_2020.safetensors"


def test_spec_imports_nothing_but_the_standard_library():
    code = ("import sys; import geogan.contract.options, geogan.contract.messages, "
            "geogan.contract.names, "
            "geogan.contract.checkpoint, geogan.contract.protocol, geogan.contract.choices; "
            "heavy = [m for m in ('torch', 'numpy', 'rasterio', 'click') if m in sys.modules]; "
            "assert not heavy, heavy")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_spec_option_is_the_cli_option(name):
    """Flag, default and choices of each command's click options are the spec's."""
    command = main.get_command(click.Context(main), name)
    assert command is not None
    by_name = {p.name: p for p in command.params if isinstance(p, click.Option)}
    for opt in COMMANDS[name].values():
        param = by_name[opt.name]
        assert opt.cli_flag in param.opts + param.secondary_opts, (name, opt.name)
        if opt.kind == "flag" and opt.default is True and not opt.negatable:
            assert param.flag_value is False and param.default is True
        else:
            assert param.default == opt.default, (name, opt.name)
        if opt.kind == "choice":
            assert list(param.type.choices) == list(opt.choices), (name, opt.name)


def test_an_optional_option_s_label_does_not_say_optional():
    """QGIS marks an optional parameter "[optional]" itself; "(optional)" would say it twice."""
    from geogan.contract.options import Option

    labels = [opt.label for command in COMMANDS.values() for opt in command.values()
              if opt.optional and opt.label]
    assert "Statistics file" in labels and "Area of interest" in labels
    with pytest.raises(ValueError, match="says it is optional"):
        Option("stats", "path", None, label="Statistics file (optional)", optional=True)
    # a required option's label may say what leaving it empty means
    assert Option("bands", "bands", label="Bands (empty: all)").label == "Bands (empty: all)"


def test_library_configs_default_to_the_spec():
    from geogan.tiling import TileConfig
    from geogan.train import TrainConfig
    from geogan.translate import TranslateConfig

    for config, command in ((TranslateConfig(), TRANSLATE), (TileConfig(), TILE)):
        for opt in command.values():
            if hasattr(config, opt.name):
                assert getattr(config, opt.name) == opt.default, opt.name
    train = TrainConfig(a=Path("a"), b=Path("b"), output=Path("o"))
    assert (train.crop, train.upsample, train.epochs) == (256, "resize", 200)
    # the GAN settings are declared once (GANSettings) and TrainConfig holds them
    from geogan.models.base import GANSettings

    assert train.gan == GANSettings()
    for name in GANSettings.names():
        if name in TRAIN:
            assert getattr(GANSettings(), name) == TRAIN.default_of(name), name
            assert getattr(train, name) == TRAIN.default_of(name), name
    assert set(TRAIN) >= set(GANSettings.names()) - {"use_dropout"}


def test_messages_name_parameters_in_each_front_ends_words():
    template = "`overlap` must be at most half `tile`; pass `overwrite` or `co` KEY=VALUE"
    assert messages.params_of(template) == ["overlap", "tile", "overwrite", "co"]
    assert messages.for_cli(template) == ("--overlap must be at most half --tile; pass "
                                          "--overwrite or --co KEY=VALUE")
    assert messages.for_qgis(template, "translate") == (
        "'Tile overlap (pixels)' must be at most half 'Tile size (pixels)'; pass --overwrite "
        "or --co KEY=VALUE")
    # the same name in another command's dialog has that dialog's label
    assert messages.for_qgis("`overlap` too large", "tile") == "'Chip overlap (pixels)' too large"
    assert messages.for_qgis("pass `overwrite`", "tile") == \
        "pass 'Replace a non-empty output folder'"


def test_errors_keep_their_template_and_print_cli_words():
    exc = OutputError("out.tif already exists; pass `overwrite` to replace it")
    assert str(exc) == "out.tif already exists; pass --overwrite to replace it"
    assert exc.template == "out.tif already exists; pass `overwrite` to replace it"
    assert exc.params == ["overwrite"]
    assert str(InputError("no backticks here")) == "no backticks here"


def test_cli_writes_an_error_record_for_programs(tmp_path):
    src = tmp_path / "in.tif"
    src.write_bytes(b"")
    result = CliRunner().invoke(main, ["--progress", "json", "translate", str(SHIPPED), str(src),
                                       "-o", str(tmp_path / "o.tif"), "--tile", "100",
                                       "--overlap", "60"])
    assert result.exit_code != 0
    records = [protocol.parse_error_record(line) for line in result.output.splitlines()]
    records = [r for r in records if r is not None]
    assert len(records) == 1
    assert records[0].template.startswith("`overlap` must be between 0 and half the tile (50)")
    assert records[0].message.startswith("--overlap must be")
    assert records[0].params == ("overlap",)
    assert "Error: --overlap must be between 0 and half the tile (50), got 60" in result.output


def test_progress_line_round_trip():
    line = protocol.progress_line(3, 4, "translate", loss=0.5)
    event = protocol.parse_progress_line(line)
    assert event == protocol.ProgressEvent(0.75, 3.0, 4.0, "translate", {"loss": 0.5})
    assert protocol.parse_progress_line("not json") is None
    assert protocol.parse_error_line("Error: disk full") == "disk full"


def test_checkpoint_schema_reads_the_shipped_model_and_writes_it_back():
    p = schema.resolve_checkpoint(SHIPPED)
    raw = schema.parse_meta(p, schema.read_header_text(p))
    meta = schema.CheckpointMeta.from_json(raw)
    assert meta.directions == ("a2b", "b2a")
    assert (meta.input_bands("a2b"), meta.output_bands("b2a")) == (4, 4)
    assert meta.generator("a2b").arch == "resnet_6blocks"
    assert meta.to_json() == raw
    from geogan.checkpoint import read_metadata

    assert read_metadata(SHIPPED) == raw


def _fake(path: Path, meta: dict) -> Path:
    header = json.dumps({"__metadata__": {"geogan": json.dumps(meta)}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    return path


def test_checkpoint_schema_refuses_newer_formats_and_foreign_files(tmp_path):
    newer = _fake(tmp_path / "new.safetensors", {"format": schema.FORMAT, "format_version": 99,
                                                  "geogan_version": "9.0"})
    with pytest.raises(schema.MetadataError, match="newer geogan .*9.0.*upgrade geogan"):
        schema.read_checkpoint_meta(newer)
    other = _fake(tmp_path / "other.safetensors", {"format": "something-else"})
    with pytest.raises(schema.MetadataError, match="is not a geogan checkpoint"):
        schema.read_checkpoint_meta(other)


def test_temporary_names_round_trip():
    name = names.temp_name("out.tif", 1234, "abcdef01", "tmp", ".tif")
    assert name == ".out.tif.1234.abcdef01.tmp.tif"
    assert names.temp_of(name) == "out.tif" and names.temp_pid(name) == 1234
    assert names.temp_of("out.tif") is None
    assert names.parse_chip_name(names.chip_name("naip", 512, 0)) == ("naip", 512, 0)


def test_cli_log_lines_name_parameters_in_the_cli_s_words_and_json_keeps_the_template():
    import logging

    from geogan.cli import LogWords
    from geogan.contract.messages import for_qgis
    from geogan.contract.options import TILE

    record = logging.LogRecord("geogan.tiling", logging.WARNING, __file__, 1,
                               "raise `max_nodata` above %s", ("0.5",), None)
    assert LogWords("tile").format(record) == "WARNING geogan.tiling: raise --max-nodata above 0.5"
    event = protocol.parse_error_record(LogWords("tile", json_warnings=True).format(record),
                                        "warning")
    assert event is not None
    assert event.message == "raise --max-nodata above 0.5"
    assert (event.template, event.params) == ("raise `max_nodata` above 0.5", ("max_nodata",))
    assert for_qgis(event.template, "tile") == \
        f"raise '{TILE['max_nodata'].label}' above 0.5"
    info = logging.LogRecord("geogan.tiling", logging.INFO, __file__, 1, "`tile` %d", (64,), None)
    assert LogWords("translate", json_warnings=True).format(info) == "INFO geogan.tiling: --tile 64"


def test_checkpoint_meta_writes_the_fields_it_holds_and_leaves_out_unset_ones():
    norm = {"dtype": "uint8", "lo": [0.0] * 3, "hi": [255.0] * 3, "nodata": None}
    gen = schema.GeneratorMeta("G_A2B", "resnet_6blocks", {"in_channels": 3, "out_channels": 3})
    meta = schema.CheckpointMeta("pix2pix", {"a2b": gen},
                                 {"a": schema.DomainMeta("a", norm),
                                  "b": schema.DomainMeta("b", norm, band_names=["r", "g", "b"])},
                                 step=0, epoch=0, extra={"imported_from": "elsewhere"})
    written = meta.to_json()
    assert (written["step"], written["epoch"], written["imported_from"]) == (0, 0, "elsewhere")
    assert not {"losses", "training", "inference_only", "total_steps", "discriminators",
                "chip_size"} & set(written)
    assert written["domains"]["a"] == {"name": "a", "norm": norm, "nodata": None}
    assert written["domains"]["b"]["band_names"] == ["r", "g", "b"]
    again = schema.CheckpointMeta.from_json(json.loads(json.dumps(written)))
    assert again.generators == meta.generators and again.step == 0 and again.extra == meta.extra


def test_no_library_module_renames_a_contract_name():
    """The contract's names are imported where they are used, under their own names: no
    module-level ``X = names.Y`` / ``X = choices.Y`` and no ``import Y as _Y`` from it."""
    import ast

    root = Path(__file__).resolve().parents[1] / "geogan"
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).as_posix()
        if rel.startswith("geogan/contract/"):
            continue
        tree = ast.parse(path.read_text(), rel)
        imports = [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                   and (node.module or "").startswith("geogan.contract")]
        # `from geogan.contract import names` imports modules; the others, names
        modules = {a.asname or a.name for n in imports if n.module == "geogan.contract"
                   for a in n.names}
        imported = {a.asname or a.name for n in imports if n.module != "geogan.contract"
                    for a in n.names}
        found += [f"{rel}:{n.lineno}: {a.name} as {a.asname}" for n in imports
                  if n.module != "geogan.contract" for a in n.names
                  if a.asname and a.asname != a.name]
        for node in tree.body:  # module level
            value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
            if isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name) \
                    and value.value.id in modules \
                    or isinstance(value, ast.Name) and value.id in imported:
                found.append(f"{rel}:{node.lineno}: = {ast.unparse(value)}")
    assert not found, "import the contract's name where it is used:\n" + "\n".join(found)


@pytest.mark.parametrize("module", ["geogan.models.gan", "geogan.models.base",
                                    "geogan.datasets"])
def test_each_layer_imports_first_in_a_fresh_interpreter(module):
    """No import cycle through a package's ``__init__`` (models -> datasets -> models)."""
    result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr.splitlines()[-1:]
