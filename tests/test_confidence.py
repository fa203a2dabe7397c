"""The confidence measures (geogan.confidence) and the QGIS style beside a confidence raster
(geogan.qml): what each measure says of inputs whose answer is known, independence of the
tile, foreign content flagged by the shipped model, and QGIS reading the style."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest
import torch
from torch import nn

from geogan import confidence as conf
from geogan.checkpoint import LoadedGenerator, load_generator
from geogan.normalize import BandNorm
from geogan.qml import pseudocolor_style, style_path_for, write_confidence_style

SAMPLE = Path(__file__).resolve().parents[1] / "geogan" / "sample_data"
SHIPPED = SAMPLE / "pretrained" / "naip_2009_to_2020.safetensors"


def _toy(module: nn.Module, bands: int = 3) -> LoadedGenerator:
    norm = BandNorm.full_range("uint8", bands)
    return LoadedGenerator(module.eval(), "a2b", norm, norm, None)


def _pointwise(bands: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(bands, 8, 1), nn.ReLU(), nn.Conv2d(8, bands, 1), nn.Tanh())


def _skewed(bands: int = 3) -> nn.Module:
    """A 3x3 convolution with a one-sided kernel: not equivariant under flips."""
    conv = nn.Conv2d(bands, bands, 3, padding=1, padding_mode="reflect", bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        for c in range(bands):
            conv.weight[c, c, 1, 2] = 1.0  # each output pixel copies its right neighbour
    return nn.Sequential(conv, nn.Tanh())


def _symmetric_window(size: int = 32) -> torch.Tensor:
    """A window ``(1, 3, size, size)`` unchanged by every flip and rotation."""
    rng = np.random.default_rng(1)
    a = rng.uniform(-1, 1, (3, size, size)).astype(np.float32)
    a = a + a[:, ::-1] + a[:, :, ::-1] + a[:, ::-1, ::-1]
    a = a + a.transpose(0, 2, 1)
    return torch.from_numpy(a / 8).unsqueeze(0)


@pytest.mark.parametrize("name", conf.DIHEDRAL)
def test_transform_is_undone_by_its_inverse(name):
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    y = conf.transform(x, name)
    assert torch.equal(conf.transform(y, name, inverse=True), x)
    assert name == "identity" or not torch.equal(y, x)


def test_equivariant_generator_on_symmetric_window_has_no_disagreement():
    """A pointwise generator commutes with every flip and rotation: its outputs under the
    eight transforms agree exactly on a symmetric window (and on any window)."""
    x = _symmetric_window()
    models = conf.load_models(_toy(_pointwise()), None, None)
    d = conf.tta_disagreement(models.a2b, x, conf.DIHEDRAL[1:])
    assert d.shape == (1, 32, 32)
    assert float(d.abs().max()) < 1e-6
    rng = torch.Generator().manual_seed(2)
    noisy = torch.rand((1, 3, 32, 32), generator=rng) * 2 - 1
    assert float(conf.tta_disagreement(models.a2b, noisy, conf.DIHEDRAL[1:]).max()) < 1e-6
    c = conf.window_confidence(models, x, "tta")
    assert torch.allclose(c, torch.ones_like(c))


def test_a_generator_that_is_not_equivariant_disagrees():
    models = conf.load_models(_toy(_skewed()), None, None)
    rng = torch.Generator().manual_seed(3)
    x = torch.rand((1, 3, 32, 32), generator=rng) * 2 - 1
    d = conf.tta_disagreement(models.a2b, x, ("flip_h",))
    assert float(d.mean()) > 0.05
    c = conf.window_confidence(models, x, "tta")
    assert float(c.mean()) < 0.5


def test_cycle_error_is_zero_for_inverse_generators_and_needs_b2a():
    """b2a undoing a2b exactly (1x1 convolutions, a matrix and its inverse) closes the cycle."""
    m = torch.tensor([[0.5, 0.1, 0.0], [0.0, 0.6, 0.1], [0.1, 0.0, 0.7]])
    fwd, back = nn.Conv2d(3, 3, 1, bias=False), nn.Conv2d(3, 3, 1, bias=False)
    with torch.no_grad():
        fwd.weight.copy_(m.view(3, 3, 1, 1))
        back.weight.copy_(torch.linalg.inv(m).view(3, 3, 1, 1))
    x = torch.rand((2, 3, 16, 16), generator=torch.Generator().manual_seed(4)) * 0.8 - 0.4
    models = conf.load_models(_toy(fwd), _toy(back), None)
    assert float(conf.cycle_error(models.a2b, models.b2a, x).max()) < 1e-5
    with pytest.raises(ValueError, match="b2a"):
        conf.window_distance(conf.load_models(_toy(fwd), None, None), x, "cycle")


def test_passes_are_within_three_translations_by_default():
    assert conf.passes(conf.DEFAULT_MEASURE) <= 3
    assert conf.passes(conf.default_measure(False)) <= 3
    assert conf.default_measure(True) == "cycle"
    assert (conf.default_measure(False), conf.default_measure(False, False)) == ("feature",
                                                                                 "tta")
    assert conf.passes("tta8") == 8
    with pytest.raises(ValueError, match="unknown confidence measure"):
        conf.passes("nope")


def test_raster_confidence_pointwise_is_one_and_masks_invalid():
    """A pointwise generator is sure everywhere; invalid pixels are NaN; shape and dtype."""
    models = conf.load_models(_toy(_pointwise()), None, None)
    raster = np.random.default_rng(5).integers(1, 256, (3, 50, 70)).astype(np.uint8)
    valid = np.ones((50, 70), bool)
    valid[:5, :9] = False
    c = conf.raster_confidence(models, raster, 32, 8, measure="tta", valid=valid)
    assert c.shape == (50, 70) and c.dtype == np.float32
    assert np.isnan(c[:5, :9]).all()
    assert np.allclose(c[valid], 1.0, atol=1e-5)


def test_file_reader_reads_the_windows_the_array_reader_does(make_raster):
    """The b2a statistics sample read from a file or from memory: same values, same mask."""
    import rasterio

    path = make_raster("in.tif", 40, 30, count=3, nodata=0, nodata_box=(0, 6, 0, 8))
    models = conf.load_models(_toy(_pointwise()), None, None)
    with rasterio.open(path) as src:
        raw = src.read()
        from_file = conf.file_reader(src, [1, 2, 3], models, 0)(-5, -3, 20, 20)
    from geogan.normalize import valid_mask

    from_array = conf.array_reader(raw, models, valid_mask(raw, 0))(-5, -3, 20, 20)
    assert np.array_equal(from_file[0], from_array[0])
    assert np.array_equal(from_file[1], from_array[1])
    assert from_file[1].min() == 0.0 and from_file[1].max() == 1.0  # mirrored nodata corner


@pytest.fixture(scope="module")
def shipped() -> tuple[LoadedGenerator, LoadedGenerator]:
    if not SHIPPED.is_file():
        pytest.skip("the shipped model is not bundled")
    return load_generator(SHIPPED, "a2b"), load_generator(SHIPPED, "b2a")


def _crop(tmp_path: Path, size: int = 320) -> tuple[Path, np.ndarray]:
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(SAMPLE / "naip_2009.tif") as src:
        win = Window(300, 200, size, size)
        data = src.read(window=win)
        profile = {**src.profile, "width": size, "height": size,
                   "transform": src.window_transform(win)}
    path = tmp_path / "crop.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path, data


def _raster_confidence(gens, path: Path, data: np.ndarray, tile: int, measure: str
                       ) -> np.ndarray:
    from geogan.normstats import estimate_stats

    a2b, b2a = gens
    stats = estimate_stats(a2b, [path], "global", [[1, 2, 3, 4]], device="cpu")
    models = conf.raster_models(a2b, b2a, data, stats, measure)
    return conf.raster_confidence(models, data, tile, 64, measure=measure)


#: Largest difference allowed between tilings (confidence units, 0..1) at any pixel and on
#: average; measured with the shipped model and the default measure on a 320 px crop:
#: 0.063 and 0.0030 (the generator's reflection padding at window edges differs; the
#: statistics do not).
TILE_MAX, TILE_MEAN = 0.1, 0.01


def test_confidence_hardly_depends_on_the_tile(shipped, tmp_path):
    """The same windows' blending and global statistics as the translation: 128 px windows
    and one 320 px window give the same confidence within TILE_MAX / TILE_MEAN."""
    path, data = _crop(tmp_path)
    small = _raster_confidence(shipped, path, data, 128, conf.DEFAULT_MEASURE)
    whole = _raster_confidence(shipped, path, data, 320, conf.DEFAULT_MEASURE)
    diff = np.abs(small - whole)
    assert float(diff.max()) < TILE_MAX
    assert float(diff.mean()) < TILE_MEAN
    assert 0.0 <= float(small.min()) and float(small.max()) <= 1.0


def test_pasted_noise_lowers_the_confidence_there(shipped, tmp_path):
    """Uniform noise pasted into the orthophoto: less confident there than elsewhere."""
    import rasterio

    path, data = _crop(tmp_path)
    noisy = data.copy()
    rng = np.random.default_rng(6)
    noisy[:, 120:184, 120:184] = rng.integers(1, 256, (4, 64, 64), dtype=np.uint8)
    with rasterio.open(path) as src:
        profile = src.profile
    pasted = tmp_path / "pasted.tif"
    with rasterio.open(pasted, "w", **profile) as dst:
        dst.write(noisy)
    c = _raster_confidence(shipped, pasted, noisy, 320, conf.DEFAULT_MEASURE)
    inside = c[128:176, 128:176]
    outside = np.ones_like(c, bool)
    outside[88:216, 88:216] = False
    assert float(np.median(inside)) < 0.5 * float(np.median(c[outside]))


# -- the QGIS style ---------------------------------------------------------------------------


def test_style_is_a_pseudocolour_ramp_on_band_one_from_red_to_green(tmp_path):
    path = write_confidence_style(style_path_for(tmp_path / "out.confidence.tif"))
    assert path.name == "out.confidence.qml"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE qgis")
    root = ET.fromstring(text.split("\n", 1)[1])
    renderer = root.find("pipe/rasterrenderer")
    assert renderer is not None
    assert (renderer.get("type"), renderer.get("band")) == ("singlebandpseudocolor", "1")
    assert (renderer.get("classificationMin"), renderer.get("classificationMax")) == ("0", "1")
    shader = renderer.find("rastershader/colorrampshader")
    assert shader.get("colorRampType") == "INTERPOLATED"
    items = shader.findall("item")
    assert [float(i.get("value")) for i in items] == sorted(float(i.get("value")) for i in items)
    red, green = items[0].get("color"), items[-1].get("color")
    assert int(red[1:3], 16) > int(red[3:5], 16) and int(green[3:5], 16) > int(green[1:3], 16)
    assert "guessing" in items[0].get("label") and "sure" in items[-1].get("label")
    assert "1 = the model is sure" in root.find("layerMetadata/abstract").text


def test_style_refuses_a_ramp_that_does_not_rise():
    with pytest.raises(ValueError, match="rise"):
        pseudocolor_style(((1.0, "#000000", "a"), (0.0, "#ffffff", "b")))


def test_qgis_loads_the_style_with_a_float32_raster(make_raster, tmp_path):
    """QGIS 3.22 (headless) opens NAME.tif with NAME.qml beside it as the ramp."""
    from test_qgis_plugin import _qgis_python, qgis_renderer

    python = _qgis_python()
    if python is None:
        pytest.skip("no Python with the qgis module (apt-get install python3-qgis)")
    data = np.linspace(0, 1, 40 * 30, dtype=np.float32).reshape(1, 30, 40)
    raster = make_raster("out.confidence.tif", data=data)
    write_confidence_style(style_path_for(raster))
    shader = "r.shader().rasterShaderFunction()"
    line = qgis_renderer(python, raster, f"r.type(), r.band(), {shader}.minimumValue(), "
                         f"{shader}.maximumValue(), "
                         "'|'.join(label for label, _ in r.legendSymbologyItems())", tmp_path)
    kind, band, lo, hi, labels = line.split(" ", 4)
    assert (kind, band, float(lo), float(hi)) == ("singlebandpseudocolor", "1", 0.0, 1.0)
    assert "guessing" in labels and "the model is sure" in labels
