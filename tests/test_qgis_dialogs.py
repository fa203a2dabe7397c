"""The geogan algorithms' dialogs as QGIS's Python builds them: parameters, labels, help,
and the job each turns its values into (checked against geogan's own command line).

Skipped, with the reason, when no Python imports qgis (apt-get install python3-qgis).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from test_qgis_backend import _parsed, write_fake_checkpoint
from test_qgis_plugin import PLUGIN_PATH, TIMEOUT_S, _qgis_python, explain, make_profile, qgis_env

DIALOG_SCRIPT = """
import json, sys
sys.path.insert(0, PLUGIN_PATH)
from qgis.core import (QgsApplication, QgsProcessingFeedback,
                       QgsProcessingParameterDefinition as Def)
app = QgsApplication([], False)
app.initQgis()
sys.path.insert(0, QgsApplication.pkgDataPath() + "/python/plugins")
from processing.core.Processing import Processing
Processing.initialize()
import processing
import geogan_qgis
from geogan_qgis.algorithm import GeoganAlgorithm
plugin = geogan_qgis.classFactory(None)
plugin.initProcessing()
out = {"algorithms": {}}
for alg in QgsApplication.processingRegistry().providerById("geogan").algorithms():
    out["algorithms"][alg.name()] = {
        "help": alg.shortHelpString(),
        "parameters": [{"name": p.name(), "label": p.description(), "type": p.type(),
                        "optional": bool(p.flags() & Def.FlagOptional),
                        "advanced": bool(p.flags() & Def.FlagAdvanced)}
                       for p in alg.parameterDefinitions()]}
if len(sys.argv) > 1:  # run geogan:translate with these parameters, keeping the job's arguments
    jobs = []
    GeoganAlgorithm.run_job = lambda self, job, feedback: jobs.append(list(job.args))
    processing.run("geogan:translate", json.loads(sys.argv[1]), feedback=QgsProcessingFeedback())
    out["args"] = jobs[0]
print("DIALOG", json.dumps(out))
"""


def _dialogs(tmp_path: Path, translate: dict | None = None) -> dict:
    """The geogan algorithms as QGIS's Python sees them (parameters and help), and with
    ``translate`` the arguments of the job Translate raster makes of those parameters."""
    python = _qgis_python()
    if python is None:
        pytest.skip("no Python with the qgis module (apt-get install python3-qgis)")
    script = tmp_path / "dialogs.py"
    script.write_text(f"PLUGIN_PATH = {str(PLUGIN_PATH)!r}\n" + DIALOG_SCRIPT)
    args = [python, str(script)] + ([json.dumps(translate)] if translate else [])
    proc = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT_S,
                          env=qgis_env(make_profile(tmp_path / "settings", None), tmp_path))
    assert proc.returncode == 0, explain(proc)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("DIALOG "))
    return json.loads(line[len("DIALOG "):])


def test_optional_parameters_leave_the_optional_mark_to_qgis(tmp_path):
    """QGIS adds "[optional]" to an optional parameter's label: the label does not say it."""
    algorithms = _dialogs(tmp_path)["algorithms"]
    assert sorted(algorithms) == ["tile", "train", "translate"]
    optional = [(name, p["label"]) for name, alg in algorithms.items()
                for p in alg["parameters"] if p["optional"]]
    assert [label for _, label in optional if "optional" in label.lower()] == []
    assert ("translate", "Statistics file") in optional  # the check can fail: there are some


def test_the_dialogs_help_leaves_qgis_process_choice_numbers_out(tmp_path):
    """How qgis_process takes a choice (by name or number) is for qgis_process help only
    (test_qgis_plugin::test_help_describes_the_translate_parameters), not the dialogs."""
    for name, alg in _dialogs(tmp_path)["algorithms"].items():
        assert alg["help"] and "by number" not in alg["help"], name


def test_translate_dialog_offers_blend_precision_cog_and_compression(tmp_path):
    from geogan.contract.options import TRANSLATE

    params = {p["name"]: p for p in _dialogs(tmp_path)["algorithms"]["translate"]["parameters"]}
    for name, kind in (("blend", "enum"), ("precision", "enum"), ("cog", "boolean"),
                       ("compress", "enum")):
        opt = TRANSLATE[name]
        assert params[opt.qgis_key]["label"] == opt.label and opt.label, name
        assert params[opt.qgis_key]["type"] == kind
        assert params[opt.qgis_key]["advanced"], name


NUMBER_SCRIPT = """
import json, sys
sys.path.insert(0, PLUGIN_PATH)
from qgis.core import (QgsApplication, QgsProcessingAlgorithm, QgsProcessingContext,
                       QgsProcessingParameterDefinition as Def)
app = QgsApplication([], False)
app.initQgis()
from geogan_qgis.params import option_value, parameter
from geogan_qgis.contract.options import Option
nodata = Option("nodata", "float", None, label="Nodata value", optional=True)
batch = Option("batch_size", "int", None, label="Batch size (0: automatic)")

class Probe(QgsProcessingAlgorithm):
    def name(self): return "probe"
    def createInstance(self): return Probe()
    def initAlgorithm(self, config=None):
        self.addParameter(parameter(nodata))
        self.addParameter(parameter(batch))
    def processAlgorithm(self, parameters, context, feedback): return {}

alg = Probe()
alg.initAlgorithm()
context = QgsProcessingContext()
out = {"optional": bool(alg.parameterDefinition("NODATA").flags() & Def.FlagOptional),
       "default": alg.parameterDefinition("NODATA").defaultValue()}
for case, given in (("empty", {}), ("zero", {"NODATA": 0, "BATCH_SIZE": 0}),
                    ("negative", {"NODATA": -9999, "BATCH_SIZE": 4})):
    out[case] = {"accepted": alg.checkParameterValues(given, context)[0],
                 "values": [option_value(alg, given, o, context) for o in (nodata, batch)]}
print("NUMBERS", json.dumps(out))
"""


def test_an_optional_number_is_empty_for_none_and_takes_zero_as_a_value(tmp_path):
    """An optional number option (a nodata value, say) is None when left empty, 0 when set to 0;
    a number defaulting to None that is not optional keeps 0 for None (batch size)."""
    python = _qgis_python()
    if python is None:
        pytest.skip("no Python with the qgis module (apt-get install python3-qgis)")
    script = tmp_path / "numbers.py"
    script.write_text(f"PLUGIN_PATH = {str(PLUGIN_PATH)!r}\n" + NUMBER_SCRIPT)
    proc = subprocess.run([python, str(script)], capture_output=True, text=True,
                          timeout=TIMEOUT_S,
                          env=qgis_env(make_profile(tmp_path / "settings", None), tmp_path))
    assert proc.returncode == 0, explain(proc)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("NUMBERS "))
    out = json.loads(line[len("NUMBERS "):])
    assert (out["optional"], out["default"]) == (True, None)
    assert out["empty"] == {"accepted": True, "values": [None, None]}
    assert out["zero"] == {"accepted": True, "values": [0.0, None]}
    assert out["negative"] == {"accepted": True, "values": [-9999.0, 4]}


def _other_value(opt, tmp_path: Path) -> tuple[object, object]:
    """A value for ``opt`` other than its default: (as the dialog takes it, as geogan parses it)."""
    if opt.choices:
        choice = next(c for c in opt.choices if c != opt.default and c != "cuda")
        return choice, choice
    if opt.kind == "flag":
        return not opt.default, not opt.default
    if opt.kind == "int":
        value = opt.default // 2 if opt.default else 3
        return value, value
    if opt.kind == "float":
        value = (opt.maximum or 1.0) / 2 if opt.default is None else opt.default / 2 + 0.25
        return value, value
    if opt.kind == "bands":
        return "3,2,1", (3, 2, 1)
    if opt.kind == "path":
        path = tmp_path / f"{opt.name}.json"
        path.write_text("{}")
        return str(path), path
    if opt.kind == "str":
        return "red,green,blue", "red,green,blue"
    pytest.fail(f"no test value for a {opt.kind} option ({opt.name}); add one here")


def test_translate_dialog_values_reach_geogan_as_its_command_line_parses_them(make_raster,
                                                                             tmp_path):
    """Every translate option the dialog shows, set to a value other than its default, is in
    the job's arguments, and geogan's own command line reads that value back."""
    from geogan.contract.options import TRANSLATE

    shown = {p["name"] for p in _dialogs(tmp_path)["algorithms"]["translate"]["parameters"]}
    # the area of interest is a polygon layer and the stack raster layers, not values
    options = [opt for opt in TRANSLATE.values() if opt.qgis_key in shown
               and opt.name not in ("aoi", "stack")]
    assert {"blend", "precision", "cog", "compress", "tile"} <= {o.name for o in options}
    src = make_raster("rgb.tif", count=3)
    ckpt = write_fake_checkpoint(tmp_path / "m.safetensors", 3, 3)
    out = tmp_path / "out.tif"
    values = {opt.name: _other_value(opt, tmp_path) for opt in options}
    given = {"INPUT": str(src), "CHECKPOINT": str(ckpt), "OUTPUT": str(out)}
    given.update({TRANSLATE[name].qgis_key: dialog for name, (dialog, _) in values.items()})
    args = _dialogs(tmp_path, given)["args"]
    assert args[:3] == ["translate", "-o", str(out)]
    assert args[-3:] == ["--", str(ckpt), str(src)]  # positionals after --
    params = _parsed(tuple(args))
    assert {name: params[name] for name in values} == {
        name: parsed for name, (_, parsed) in values.items()}
