"""geogan.export: ONNX that onnxruntime runs like torch, on sizes other than the example."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import cli_error, make_checkpoint

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

from geogan.checkpoint import load_generator  # noqa: E402
from geogan.cli import main  # noqa: E402
from geogan.contract.checkpoint import DomainMeta  # noqa: E402
from geogan.errors import CheckpointError, GeoganError, OutputError  # noqa: E402
from geogan.export import export_onnx, find_sidecar, read_sidecar, sidecar_path  # noqa: E402
from geogan.normalize import BandNorm  # noqa: E402

NORM_A = BandNorm.full_range("uint8", 3, 0.0)
NORM_B = BandNorm("uint16", (10.0, 20.0, 30.0, 40.0), (1000.0, 2000.0, 3000.0, 4000.0), None)


def _checkpoint(path: Path, arch: str, both: bool = True, **extra: str) -> Path:
    """A tiny CycleGAN-like checkpoint: a2b maps 3 uint8 bands to 4 uint16 bands."""
    domains = {"a": DomainMeta("2009", NORM_A.to_json(), [1, 2, 3], "uint8", 0.0),
               "b": DomainMeta("2020", NORM_B.to_json(), [1, 2, 3, 4], "uint16", None)}
    # noise breaks the init's symmetry a little more than N(0, 0.02)
    return make_checkpoint(path, arch=arch, bands_a=3, bands_b=4, ngf=8,
                           model="cyclegan" if both else "pix2pix",
                           directions=("a2b", "b2a") if both else ("a2b",), noise=0.05,
                           meta={"domains": domains, "epoch": 1, "step": 10}, **extra)


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _compare(session: ort.InferenceSession, module: torch.nn.Module,
             shape: tuple[int, ...]) -> float:
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(sum(shape))) * 2 - 1
    with torch.no_grad():
        expected = module(x).numpy()
    got = session.run(["output"], {"input": x.numpy()})[0]
    assert got.shape == expected.shape == (shape[0], expected.shape[1], *shape[2:])
    return float(np.abs(got - expected).max())


@pytest.fixture(scope="module")
def resnet(tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint, exported b2a ONNX) for a resnet_6blocks CycleGAN, exported once."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("resnet")
    ckpt = _checkpoint(folder / "model.safetensors", "resnet_6blocks")
    return ckpt, export_onnx(ckpt, folder / "out" / "g.onnx", direction="b2a")


def test_resnet_onnx_matches_torch_on_other_sizes(resnet):
    ckpt, onnx_path = resnet
    module = load_generator(ckpt, "b2a").module
    session = _session(onnx_path)
    # the export example was 2 x 4 x 32 x 32: other batches, heights and widths
    for shape in [(1, 4, 36, 28), (3, 4, 20, 44), (1, 4, 64, 64)]:
        assert _compare(session, module, shape) < 1e-4


def test_onnx_declares_dynamic_axes_and_embeds_the_sidecar(resnet):
    _, onnx_path = resnet
    proto = onnx.load(str(onnx_path))
    onnx.checker.check_model(proto, full_check=True)
    dims = [[d.dim_param or d.dim_value for d in t.type.tensor_type.shape.dim]
            for t in (proto.graph.input[0], proto.graph.output[0])]
    assert dims == [["batch", 4, "height", "width"], ["batch", 3, "height", "width"]]
    assert proto.opset_import[0].version == 18
    sidecar = json.loads(sidecar_path(onnx_path).read_text())
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["geogan"]) == sidecar


def test_sidecar_describes_bands_normalisation_direction_and_architecture(resnet):
    _, onnx_path = resnet
    meta = json.loads(sidecar_path(onnx_path).read_text())
    assert meta["direction"] == "b2a"
    assert meta["architecture"] == {"arch": "resnet_6blocks",
                                    "kwargs": {"in_channels": 4, "out_channels": 3, "ngf": 8}}
    assert meta["bands"] == {"input": 4, "output": 3}
    assert meta["size_multiple"] == 4
    assert meta["norm_statistics"]["modes"] == ["window"]
    inp, out = meta["normalisation"]["input"], meta["normalisation"]["output"]
    assert (inp["name"], inp["dtype"], inp["lo"], inp["hi"]) == (
        "2020", "uint16", list(NORM_B.lo), list(NORM_B.hi))
    assert (out["name"], out["dtype"], out["lo"], out["hi"], out["nodata"]) == (
        "2009", "uint8", list(NORM_A.lo), list(NORM_A.hi), 0.0)
    assert "formula" in inp and "formula" in out


def test_sidecar_alone_reproduces_geogan_translation(resnet):
    """Raster values -> sidecar formula -> onnxruntime -> inverse formula == geogan in torch."""
    ckpt, onnx_path = resnet
    meta = json.loads(sidecar_path(onnx_path).read_text())
    rng = np.random.default_rng(0)
    raster = rng.integers(0, 4500, size=(1, 4, 24, 40)).astype(np.uint16)

    lo = np.array(meta["normalisation"]["input"]["lo"], np.float32)[None, :, None, None]
    hi = np.array(meta["normalisation"]["input"]["hi"], np.float32)[None, :, None, None]
    x = np.clip((raster.astype(np.float32) - lo) / (hi - lo) * 2 - 1, -1, 1)
    y = _session(onnx_path).run(["output"], {"input": x})[0]
    olo = np.array(meta["normalisation"]["output"]["lo"], np.float32)[None, :, None, None]
    ohi = np.array(meta["normalisation"]["output"]["hi"], np.float32)[None, :, None, None]
    via_onnx = np.clip(np.rint((np.clip(y, -1, 1) + 1) / 2 * (ohi - olo) + olo), 0, 255)

    gen = load_generator(ckpt, "b2a")
    with torch.no_grad():
        out = gen.module(torch.from_numpy(gen.in_norm.to_model(raster))).numpy()
    via_torch = gen.out_norm.from_model(out)
    assert np.abs(via_onnx - via_torch.astype(np.float64)).max() <= 1  # rounding ties only
    assert (via_onnx == via_torch).mean() > 0.99


def test_unet_export_through_the_cli(tmp_path):
    torch.set_num_threads(1)
    ckpt = _checkpoint(tmp_path / "p2p.safetensors", "unet_256", both=False)
    out = tmp_path / "unet.onnx"
    result = CliRunner().invoke(main, ["--progress", "none", "export", str(ckpt), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert str(out) in result.stdout
    module = load_generator(ckpt, "a2b").module
    session = _session(out)
    # the export example was 512 x 512; U-Net 256 needs multiples of 256
    for shape in [(1, 3, 256, 256), (2, 3, 256, 512)]:
        assert _compare(session, module, shape) < 1e-4
    meta = json.loads(sidecar_path(out).read_text())
    assert meta["size_multiple"] == 256 and meta["direction"] == "a2b"
    assert meta["model"] == "pix2pix"
    # no temporary files are left beside the outputs
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "p2p.json", "p2p.safetensors", "unet.onnx", "unet.onnx.json"]


def test_existing_outputs_are_kept_without_overwrite(tmp_path):
    ckpt = _checkpoint(tmp_path / "m.safetensors", "resnet_6blocks")
    out = tmp_path / "m2.onnx"
    out.write_bytes(b"old")
    with pytest.raises(OutputError, match="--overwrite"):
        export_onnx(ckpt, out)
    assert out.read_bytes() == b"old"
    out.unlink()
    sidecar_path(out).write_text("{}")
    with pytest.raises(OutputError, match="m2.onnx.json already exists"):
        export_onnx(ckpt, out)
    assert not out.exists()


def test_export_into_a_run_folder_keeps_the_checkpoint(tmp_path, resnet, monkeypatch):
    """``-o RUN/model.onnx``, then with --overwrite as the refusal advises: model.json stays."""
    import geogan.export as ex

    proto = onnx.load(str(resnet[1]))
    monkeypatch.setattr(ex, "_export_proto", lambda *args: proto)  # skip the slow export
    run = tmp_path / "run"
    ckpt = _checkpoint(run / "model.safetensors", "resnet_6blocks")
    before = (run / "model.json").read_bytes()
    for extra in ([], ["--overwrite"]):
        result = CliRunner().invoke(main, ["--progress", "none", "export", str(run), "-o",
                                           str(run / "model.onnx"), "--no-verify", *extra])
        assert result.exit_code == 0, result.output
        assert str(run / "model.onnx.json") in result.stdout
        assert (run / "model.json").read_bytes() == before
    assert json.loads((run / "model.onnx.json").read_text())["format"] == "geogan-onnx"
    assert sorted(p.name for p in run.iterdir()) == [
        "model.json", "model.onnx", "model.onnx.json", "model.safetensors"]
    assert load_generator(ckpt, "b2a").out_bands == 3  # the checkpoint still loads


def test_export_never_writes_over_a_checkpoints_sidecar(tmp_path):
    ckpt = _checkpoint(tmp_path / "m.safetensors", "resnet_6blocks")
    other = _checkpoint(tmp_path / "g.onnx.safetensors", "resnet_6blocks", both=False)
    before = (tmp_path / "g.onnx.json").read_bytes()
    with pytest.raises(OutputError,
                       match="would replace the metadata of the checkpoint .*g.onnx.safetensors"):
        export_onnx(ckpt, tmp_path / "g.onnx", overwrite=True)
    assert (tmp_path / "g.onnx.json").read_bytes() == before
    assert not (tmp_path / "g.onnx").exists() and other.is_file()


def test_sidecars_of_earlier_exports_are_still_found(tmp_path):
    old = {"format": "geogan-onnx", "format_version": 1, "direction": "a2b"}
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert find_sidecar(tmp_path / "old.onnx") == tmp_path / "old.json"
    assert read_sidecar(tmp_path / "old.onnx") == old
    sidecar_path(tmp_path / "old.onnx").write_text(json.dumps({**old, "direction": "b2a"}))
    assert read_sidecar(tmp_path / "old.onnx")["direction"] == "b2a"  # the current name wins
    _checkpoint(tmp_path / "model.safetensors", "resnet_6blocks")  # model.json: a checkpoint's
    assert find_sidecar(tmp_path / "model.onnx") is None
    with pytest.raises(OutputError, match="no geogan sidecar"):
        read_sidecar(tmp_path / "model.onnx")


def test_failed_check_leaves_nothing_behind(tmp_path, resnet, monkeypatch):
    import geogan.export as ex

    proto = onnx.load(str(resnet[1]))
    monkeypatch.setattr(ex, "_export_proto", lambda *args: proto)  # skip the slow export
    monkeypatch.setattr(ex, "VERIFY_TOLERANCE", -1.0)  # any difference fails the check
    ckpt = _checkpoint(tmp_path / "m.safetensors", "resnet_6blocks")
    with pytest.raises(GeoganError, match="disagrees with torch"):
        export_onnx(ckpt, tmp_path / "out.onnx", direction="b2a")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]


def test_bad_inputs(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        export_onnx(tmp_path / "none.safetensors", tmp_path / "x.onnx")
    ckpt = _checkpoint(tmp_path / "p.safetensors", "resnet_6blocks", both=False)
    with pytest.raises(CheckpointError, match="no 'b2a' generator"):
        export_onnx(ckpt, tmp_path / "x.onnx", direction="b2a")
    with pytest.raises(OutputError, match=".onnx"):
        export_onnx(ckpt, tmp_path / "x.json")
    with pytest.raises(GeoganError, match="--opset"):
        export_onnx(ckpt, tmp_path / "x.onnx", opset=11)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json", "p.safetensors"]


@pytest.mark.parametrize("args, message", [
    (["missing.safetensors", "-o", "x.onnx"], "not found"),
    (["{ckpt}", "-o", "x.onnx", "--direction", "b2a"], "no 'b2a' generator"),
    (["{ckpt}", "-o", "model.json"], "must end with .onnx"),
    (["{ckpt}", "-o", "{ckpt}"], "already exists; pass --overwrite"),
])
def test_cli_errors_are_one_line(tmp_path, args, message):
    ckpt = _checkpoint(tmp_path / "p.safetensors", "resnet_6blocks", both=False)
    args = [a.format(ckpt=ckpt) if "{" in a else str(tmp_path / a) if a.endswith(
        (".onnx", ".safetensors")) else a for a in args]
    result = CliRunner().invoke(main, ["--progress", "none", "export", *args])
    assert message in cli_error(result, alone=True)


@pytest.mark.parametrize("arch", ["resnet_6blocks", "unet_128"])
def test_resize_upsampling_exports_and_matches_torch(tmp_path, arch):
    torch.set_num_threads(1)
    ckpt = _checkpoint(tmp_path / "model.safetensors", arch, both=False, upsample="resize")
    onnx_path = export_onnx(ckpt, tmp_path / "g.onnx")
    ops = {n.op_type for n in onnx.load(str(onnx_path)).graph.node}
    assert "ConvTranspose" not in ops and "Resize" in ops
    module = load_generator(ckpt).module
    side = 128 if arch == "unet_128" else 36
    assert _compare(_session(onnx_path), module, (1, 3, side, side)) < 1e-4
    meta = json.loads(sidecar_path(onnx_path).read_text())
    assert meta["architecture"]["kwargs"]["upsample"] == "resize"


def test_onnx_onto_a_full_disk_names_the_onnx_output(tmp_path, resnet, full_disk, monkeypatch):
    """Before: the ONNX write failed inside the sidecar's block and the error named m.json."""
    import os

    import geogan.export as ex

    proto = onnx.load(str(resnet[1]))
    monkeypatch.setattr(ex, "_export_proto", lambda *args: proto)  # skip the slow export
    st = os.statvfs(full_disk)
    room = 64 * 1024
    assert resnet[1].stat().st_size > 2 * room  # the model cannot fit in what is left
    (full_disk / "filler").write_bytes(b"\0" * (st.f_bavail * st.f_frsize - room))
    ckpt = _checkpoint(tmp_path / "m.safetensors", "resnet_6blocks")
    result = CliRunner().invoke(main, ["--progress", "none", "export", str(ckpt), "-o",
                                       str(full_disk / "m.onnx"), "--direction", "b2a"])
    assert result.exit_code == 1
    error = cli_error(result, alone=True)
    assert error.startswith(f"Error: no space left on device writing {full_disk / 'm.onnx'}")
    assert "m.json" not in error
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]
