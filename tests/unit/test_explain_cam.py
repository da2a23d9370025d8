"""Class activation maps on tiny networks with known behaviour, the map engine on a real tiny Attention U-Net
(2D and 3D, one window and many), equivariance through the engine, and the target-layer listing."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from cache_fixture import tiny_fingerprint
from torch import nn

from seg.config import Config, ModelConfig
from seg.explain.cam import gradcam, gradcampp, hirescam, plain_cam
from seg.explain.cam_targets import layer_table, resolve_layers
from seg.explain.engine import MapEngine
from seg.explain.equivariance import by_family, equivariance
from seg.explain.keys import CAM, MapId
from seg.explain.transforms import spatial_transforms
from seg.model_folder import ModelBundle, ModelMeta
from seg.models import build_model
from seg.models.maps import GATE, MapRequest, MapSource, crop_to_input, map_factors, recording
from seg.models.unet import UNetOutput

METHODS = ("gradcam", "gradcampp", "hirescam")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread is fastest, and a second one stalls whenever the other core is busy."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def conv(dims: int):
    return nn.Conv2d if dims == 2 else nn.Conv3d


class Masking(nn.Module):
    def __init__(self, region: torch.Tensor):
        super().__init__()
        self.register_buffer("region", region.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.region


class RegionNet(nn.Module):
    """Features everywhere, but the logits see them only inside `region`: the output depends on that region only."""

    def __init__(self, dims: int, region: torch.Tensor):
        super().__init__()
        self.spatial_dims = dims
        self.features = conv(dims)(1, 4, 3, padding=1)
        self.masking = Masking(region)
        self.head = conv(dims)(4, 2, 1)
        with torch.no_grad():  # positive features; class 1 = their sum, class 0 = 0: class 1 wins inside the region
            self.features.weight.abs_()
            self.features.bias.fill_(0.1)
            self.head.weight.zero_()
            self.head.weight[1].fill_(1.0)
            self.head.bias.zero_()

    def outputs(self, x, maps=None, deep_supervision=False, gates=True) -> UNetOutput:
        return UNetOutput(self.head(self.masking(torch.relu(self.features(x)))))


class Ramp(nn.Module):
    """Adds a fixed ramp along spatial axis 0 (a positional signal) when `enabled`; identity otherwise."""

    def __init__(self, enabled: bool):
        super().__init__()
        self.enabled = enabled

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return f
        n = f.shape[2]
        return f + 3 * torch.linspace(0, 1, n).view(1, 1, n, *[1] * (f.ndim - 3))


class PointGate(MapSource):
    """A gate map that is a pointwise function of the image, reported like the network's gates."""

    def __init__(self, dims: int):
        super().__init__()
        self.conv = conv(dims)(1, 1, 1)
        self.place("level0", (1,) * dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(self.conv(x))
        self.report(GATE, g)
        return g


class PointNet(nn.Module):
    """Only 1x1 convolutions: every map is a pointwise function of the image, hence exactly equivariant to flips
    and rot90. With `ramp`, a fixed positional ramp along axis 0 is added to the features: not equivariant."""

    def __init__(self, dims: int, ramp: bool = False):
        super().__init__()
        self.spatial_dims = dims
        self.features = conv(dims)(1, 3, 1)
        self.position = Ramp(ramp)
        self.gate = PointGate(dims)
        self.head = conv(dims)(3, 2, 1)
        with torch.no_grad():  # class 1 = sum of positive features: a non-zero CAM wherever it is predicted
            self.features.weight.abs_()
            self.head.weight.zero_()
            self.head.weight[1].fill_(1.0)
            self.head.bias.copy_(torch.tensor([1.0, 0.0]))

    def outputs(self, x, maps=None, deep_supervision=False, gates=True) -> UNetOutput:
        with recording(self, MapRequest.of(maps)) as recorder:
            self.gate(x)  # reports its map to the recorder
        out = UNetOutput(self.head(torch.relu(self.position(self.features(x)))))
        if recorder is not None:
            out.maps, out.factors = crop_to_input(recorder, x.shape[2:]), map_factors(recorder)
        return out


def loaded(net: nn.Module, dims: int, classes: int = 2, patch: int = 8) -> ModelBundle:
    model = ModelConfig(spatial_dims=dims, out_channels=classes, channels=(4, 8), strides=(2,), deep_supervision=0)
    cfg = Config(model=model)
    names = ["background", *[f"c{k}" for k in range(1, classes)]]
    meta = ModelMeta.for_training(cfg, names, [patch] * dims, None)
    return ModelBundle(net.eval(), cfg, tiny_fingerprint(dims, class_names=names), meta, "toy")


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("method", METHODS)
def test_cam_is_focused_on_the_region_the_output_depends_on(dims, method):
    torch.manual_seed(0)
    shape = (12,) * dims
    region = torch.zeros(shape, dtype=torch.bool)
    region[(slice(2, 6),) * dims] = True
    net = RegionNet(dims, region)
    engine = MapEngine(loaded(net, dims, patch=12), ["masking"], method)
    maps = engine.maps(torch.rand(1, *shape) + 0.5)
    cam = maps.cams["masking"][0]
    assert maps.fallback == [False]
    assert cam[region].sum() > 0 and cam[~region].abs().max() == 0
    assert maps.plain is not None and maps.plain[0][~region].abs().max() == 0
    if method == "hirescam":  # element-wise: also a layer before the mask shows only what the output used
        before = MapEngine(loaded(net, dims, patch=12), ["features"], method).maps(torch.rand(1, *shape) + 0.5)
        assert before.cams["features"][0][~region].abs().max() == 0


def test_cam_formulas_reduce_over_every_spatial_axis():
    acts, grads = torch.rand(2, 3, 4, 5, 6), torch.randn(2, 3, 4, 5, 6)
    expected = torch.relu((grads.mean((2, 3, 4), keepdim=True) * acts).sum(1, keepdim=True))
    assert torch.allclose(gradcam(acts, grads), expected)
    assert torch.allclose(hirescam(acts, grads), torch.relu((grads * acts).sum(1, keepdim=True)))
    pp = gradcampp(acts, grads)
    assert pp.shape == (2, 1, 4, 5, 6) and torch.isfinite(pp).all() and (pp >= 0).all()


def test_plain_cam_is_the_head_without_bias():
    head = nn.Conv3d(4, 3, 1)
    feats = torch.randn(1, 4, 3, 3, 3)
    assert torch.allclose(plain_cam(feats, head), torch.relu(head(feats) - head.bias.view(1, 3, 1, 1, 1)), atol=1e-6)


@pytest.mark.parametrize("dims", [2, 3])
def test_engine_on_a_tiny_attention_unet_one_window_and_many(dims):
    torch.manual_seed(0)
    cfg = ModelConfig(spatial_dims=dims, channels=(4, 8), strides=(2,), deep_supervision=0)
    config = Config(model=cfg)
    meta = ModelMeta.for_training(config, ["background", "a", "b"][: cfg.out_channels], [8] * dims, None)
    model = ModelBundle(build_model(cfg).eval(), config, tiny_fingerprint(dims), meta, "tiny")
    shape = (13, 10, 9)[:dims]  # not a multiple of the stride: padded and cropped back
    image = torch.randn(1, *shape)
    for voxels in (10**6, 50):  # the whole case in one window, then 8-voxel windows
        engine = MapEngine(model, ["decoder.0", "encoder.1", "gates.level0.tap"], "gradcampp", 0.25, voxels)
        maps = engine.maps(image, features=True)
        assert maps.probabilities.shape == (3, *shape) and set(maps.gates) == {"level0"}
        assert maps.gates["level0"].shape == shape
        for cam in maps.cams.values():
            assert cam.shape == (2, *shape) and torch.isfinite(cam).all() and (cam >= 0).all()
        assert maps.plain.shape == (2, *shape) and maps.features.shape == (model.net.head.in_channels, *shape)


@pytest.mark.parametrize("dims", [2, 3])
def test_equivariant_network_scores_zero_and_a_positional_one_does_not(dims):
    torch.manual_seed(0)
    shape = (10, 8, 6)[:dims]
    image = torch.rand(1, *shape)
    transforms = spatial_transforms(shape, ("flip", "rot90"))
    errors = {}
    for ramp in (False, True):
        engine = MapEngine(loaded(PointNet(dims, ramp), dims, patch=10), ["position"], "hirescam")
        base = engine.maps(image)
        errors[ramp] = equivariance(engine, image, base, transforms, "position", ["c1"])
    assert MapId(GATE, "level0") in errors[False]  # the gate map is measured too
    for what, per_t in errors[False].items():
        assert max(per_t.values()) < 1e-5, (what, per_t)  # NaN (two zero maps) would fail here too
    ramp = errors[True][MapId(CAM, "c1")]
    assert ramp["flip0"] > 0.1 and ramp["flip1"] < 1e-5  # the ramp runs along axis 0 only
    flips = [v for k, v in ramp.items() if k.startswith("flip")]
    assert by_family(ramp, transforms)["flip"] == pytest.approx(sum(flips) / len(flips))


def test_layers_listing_and_name_errors():
    cfg = ModelConfig(spatial_dims=2, channels=(4, 8), strides=(2,), deep_supervision=0)
    net = build_model(cfg).eval()
    table = {info.name: info.shape for info in layer_table(net, (16, 16), 1)}
    # the default strided stem: level 0 at half resolution, the full-resolution head reads `full_res`
    assert table["decoder.0"] == (1, 4, 8, 8) and table["encoder.1"] == (1, 8, 4, 4)
    assert table["full_res"] == (1, 2, 16, 16)
    assert table["gates.level0.tap"] == (1, 1, 8, 8) and "gates.level0" not in table  # tuple output: no target
    assert resolve_layers(net, None) == ["full_res"]
    assert resolve_layers(build_model(dataclasses.replace(cfg, stem_stride=1)), None) == ["decoder.0"]
    with pytest.raises(ValueError, match="Did you mean 'decoder.0'"):
        resolve_layers(net, ["decodr.0"])
    assert math.prod(table["head"][2:]) == 256
