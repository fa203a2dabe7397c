"""#26: the layer-by-layer ``global`` estimation puts each chunk through the network in
parts (bounded memory) and still gives exactly the statistics of the chunk in one batch."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from conftest import run_cli

from geogan.normstats import estimate, layers, sampling
from geogan.normstats.statsnorm import Accumulate, StatsNorm

torch.set_num_threads(1)


def _contrasted(width: int, height: int) -> np.ndarray:
    """Texture whose brightness changes across the raster (the windows' statistics differ)."""
    rng = np.random.default_rng(3)
    base = rng.random((3, height, width))
    ramp = (np.linspace(0.15, 1.0, width)[None, None, :]
            * np.linspace(1.0, 0.5, height)[None, :, None])
    return (base * ramp * 250 + 3).astype(np.uint8)


@pytest.fixture
def chunked(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Small sample windows, measured layer by layer in chunks of 4; the batch sizes of the
    estimation passes are recorded."""
    monkeypatch.setattr(sampling, "SAMPLE_FULL_PX", 0)
    monkeypatch.setattr(sampling, "SAMPLE_WINDOW", 64)
    monkeypatch.setattr(sampling, "SAMPLE_BORDER", 8)
    monkeypatch.setattr(sampling, "SAMPLE_FRACTION", 4.0)
    planner = estimate.plan_global_sample
    monkeypatch.setattr(estimate, "plan_global_sample", lambda *a, **k: dataclasses.replace(
        planner(*a, **k), chunk=4))
    sizes: list[int] = []
    measure = layers.PreparedModule.measure

    def spy(self: layers.PreparedModule, x: torch.Tensor, w: torch.Tensor) -> None:
        sizes.append(int(x.shape[0]))
        measure(self, x, w)

    monkeypatch.setattr(layers.PreparedModule, "measure", spy)
    return sizes


def _translate(src: Path, out: Path, checkpoint: Path) -> tuple[bytes, np.ndarray]:
    result = run_cli("translate", checkpoint, src, "-o", out, "--tile", 32, "--overlap", 8,
                     "--precision", "fp32", "--save-stats")
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as ds:
        pixels = ds.read()
    return out.with_suffix(".stats.json").read_bytes(), pixels


@pytest.mark.filterwarnings("ignore:TF32")
def test_chunk_in_parts_saves_the_same_stats_file(make_raster, tmp_path, tiny_checkpoint,
                                                  chunked, monkeypatch):
    """With convolutions whose windows do not depend on their batch (oneDNN off: its
    algorithm may change with the batch size, and with it the rounding), the statistics
    file of chunks in parts is byte for byte that of whole chunks (the previous path)."""
    src = make_raster("in.tif", data=_contrasted(200, 150))
    runs = {}
    with torch.backends.mkldnn.flags(enabled=False):
        for parts in (1, 4):  # 1: each chunk in one batch, as before; 4: window by window
            chunked.clear()
            monkeypatch.setattr(sampling, "CHUNK_PARTS", parts)
            runs[parts] = _translate(src, tmp_path / f"out{parts}.tif", tiny_checkpoint)
            assert max(chunked) == 4 // parts
    saved = json.loads(runs[4][0])
    assert saved["sample"]["passes"] > 1 and saved["sample"]["windows"] > 4
    assert runs[4][0] == runs[1][0]  # byte for byte
    np.testing.assert_array_equal(runs[4][1], runs[1][1])


def test_chunk_in_parts_is_close_with_onednn(make_raster, tmp_path, tiny_checkpoint, chunked,
                                             monkeypatch):
    """With oneDNN (the default), a convolution's rounding may depend on the batch size:
    the statistics then agree to float rounding."""
    src = make_raster("in.tif", data=_contrasted(200, 150))
    stats = {}
    for parts in (1, 4):
        monkeypatch.setattr(sampling, "CHUNK_PARTS", parts)
        stats[parts] = json.loads(_translate(src, tmp_path / f"out{parts}.tif",
                                             tiny_checkpoint)[0])["layers"]
    assert stats[1].keys() == stats[4].keys()
    for name, layer in stats[1].items():
        for key, value in layer.items():
            np.testing.assert_allclose(stats[4][name][key], value, rtol=1e-5, atol=1e-7)


def test_accumulate_in_parts_equals_one_batch():
    """Sums added from kept parts are exactly those of the chunk given whole, with the
    shift of the first chunk."""
    torch.manual_seed(0)
    chunks = [torch.randn(5, 3, 16, 16) * 4 + 2 for _ in range(2)]
    weights = [(torch.rand(5, 1, 16, 16) > 0.3).float() for _ in range(2)]
    results = []
    for part in (5, 2, 1):
        layer = StatsNorm(3, 1e-5, None, None)
        layer.context = StatsNorm.Context()
        layer.mode = "accumulate"
        assert isinstance(layer.estimator, Accumulate)
        for x, w in zip(chunks, weights, strict=True):
            for j in range(0, 5, part):
                layer.context.set_weights(w[j:j + part])
                with pytest.raises(Exception) as done:
                    layer(x[j:j + part])
                assert type(done.value).__name__ == "SampleDone"
            layer.estimator.add()
        layer.finish()
        results.append((layer.mean.clone(), layer.var.clone()))
    for mean, var in results[1:]:
        assert torch.equal(mean, results[0][0]) and torch.equal(var, results[0][1])
    assert results[0][1].min() > 1.0  # a real spread was measured


def test_pretrained_model_stats_in_parts_are_byte_identical(chunked, monkeypatch):
    """The bundled model on the bundled orthophoto, sampled in chunks: the statistics of
    chunks in parts are exactly those of whole chunks (its convolutions do not depend on
    the batch size), oneDNN on as geogan runs it."""
    from geogan.checkpoint import load_generator
    from geogan.normstats import estimate_stats

    monkeypatch.setattr(sampling, "SAMPLE_FRACTION", 0.3)  # a few 64 px windows
    data = Path(sampling.__file__).resolve().parents[1] / "sample_data"
    gen = load_generator(data / "pretrained" / "naip_2009_to_2020.safetensors")
    results = {}
    for parts in (1, 4):
        chunked.clear()
        monkeypatch.setattr(sampling, "CHUNK_PARTS", parts)
        results[parts] = estimate_stats(gen, [data / "naip_2009.tif"], "global",
                                        [[1, 2, 3, 4]], device="cpu", precision="fp32")
        assert max(chunked) == 4 // parts
    assert results[1].sample == results[4].sample and results[4].sample["windows"] > 4
    for name, (mean, var) in results[1].layers.items():
        assert mean.tobytes() == results[4].layers[name][0].tobytes()
        assert var.tobytes() == results[4].layers[name][1].tobytes()
