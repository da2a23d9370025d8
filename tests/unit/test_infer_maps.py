"""Attention maps of whole cases: stitched on their own grids over sliding windows, mirrored back under TTA,
attention distances in the model's mm, and written by `seg infer --maps` in the input's geometry."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from infer_fixture import tiny_model_folder

from seg.cli import main
from seg.config import ConfigError, InferConfig
from seg.config.infer import MAP_KINDS as CONFIG_MAP_KINDS
from seg.infer.maps import map_spacing
from seg.infer.model_io import load_model
from seg.infer.predictor import Predictor
from seg.models.maps import CHANNEL, MAP_KINDS, SELF, SPATIAL, MapId, MapRequest
from seg.models.unet import UNetOutput

ATTENTION = dict(
    self_attention={1: "window", 2: "global"},
    self_attention_heads=2,
    self_attention_window=2,
    decoder_attention="cbam",
    encoder_attention="se",
)


@pytest.fixture(scope="module")
def attention_models(tmp_path_factory, synthetic_2d, synthetic_3d) -> dict[int, Path]:
    """A tiny 2D and 3D model with every kind of map: SE, CBAM, gates, window and global self-attention."""
    root = tmp_path_factory.mktemp("maps")
    return {
        2: tiny_model_folder(root / "2d", synthetic_2d, spatial_dims=2, **ATTENTION),
        3: tiny_model_folder(root / "3d", synthetic_3d, spatial_dims=3, **ATTENTION),
    }


def randomised(folder: Path):
    """The model with every weight drawn anew: self-attention starts as the identity, and untrained maps are flat."""
    model = load_model(folder)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.net.parameters():
            p.normal_(0, 0.3)
    return model


@pytest.mark.parametrize("dims", [2, 3])
def test_maps_of_a_volume_that_fits_one_window_are_the_networks_own(attention_models, dims):
    model = randomised(attention_models[dims])
    image = torch.randn(1, *(16,) * dims)
    pred = Predictor(model, tta=False, precision="32", sw_batch_size=1).predict(image, maps=True)
    spacing = model.fingerprint.preprocessing.target_spacing
    with torch.no_grad():
        direct = model.net.outputs(image[None], maps=MapRequest(spacing=spacing), deep_supervision=False).maps
    assert sorted([*pred.maps, *pred.channels]) == sorted(model.net.map_ids()) == sorted(direct)
    for map_id, value in pred.maps.items():
        assert value.shape == direct[map_id].shape[1:]  # its own grid: (1, 16 / factor, ...)
        torch.testing.assert_close(value, direct[map_id][0], atol=1e-5, rtol=1e-5)
    for map_id, value in pred.channels.items():
        torch.testing.assert_close(value, direct[map_id][0], atol=1e-6, rtol=1e-6)
    distances = torch.cat([v.flatten() for k, v in pred.maps.items() if k.kind == SELF])
    assert distances.max() > 1.0  # attention distances in mm: never clamped like gate and spatial maps


class PoolingNet(torch.nn.Module):
    """A stand-in network whose maps are known everywhere: a spatial map that is the input average-pooled by 4,
    and channel weights that are each window's mean."""

    def __init__(self, spatial_dims: int):
        super().__init__()
        self.spatial_dims = spatial_dims
        self.pool = F.avg_pool2d if spatial_dims == 2 else F.avg_pool3d

    gate_names = ()

    def map_ids(self) -> list[MapId]:
        return [MapId(CHANNEL, "enc0"), MapId(SPATIAL, "enc1")]

    def outputs(self, x: torch.Tensor, maps=None, deep_supervision=False) -> UNetOutput:
        logits = torch.zeros(x.shape[0], 3, *x.shape[2:])
        found = {MapId(SPATIAL, "enc1"): self.pool(x, 4), MapId(CHANNEL, "enc0"): x.mean(tuple(range(2, x.ndim)))}
        request = MapRequest.of(maps)
        return UNetOutput(logits, {k: v for k, v in found.items() if request and k.kind in request.kinds})


@pytest.mark.parametrize("dims, slice_axis", [(2, None), (3, None), (2, 0)])
def test_maps_are_stitched_over_windows_on_their_own_grid(attention_models, dims, slice_axis):
    """Windows of 16 at overlap 0.5 over 32 voxels start at 0, 8 and 16: the pooled map is exact everywhere, and
    the channel weights are the mean over windows. (2, 0): a 2D network slice by slice through a 3D volume."""
    model = load_model(attention_models[dims])
    model = dataclasses.replace(
        model, net=PoolingNet(dims), meta=dataclasses.replace(model.meta, slice_axis=slice_axis)
    )
    shape = (32,) * dims if slice_axis is None else (3, 32, 32)
    image = torch.randn(1, *shape)
    pred = Predictor(model, overlap=0.5, tta=False, precision="32", sw_batch_size=2).predict(image, maps=[SPATIAL])
    assert not pred.channels  # only the kinds asked for
    pred = Predictor(model, overlap=0.5, tta=True, precision="32", sw_batch_size=2).predict(image, maps=True)
    planes = image if slice_axis is None else image.movedim(1 + slice_axis, 0)  # (slices, *plane)
    pooled = PoolingNet(dims).pool(planes, 4)
    expected = pooled if slice_axis is None else pooled.movedim(0, 1 + slice_axis)
    assert pred.maps[MapId(SPATIAL, "enc1")].shape == expected.shape
    torch.testing.assert_close(pred.maps[MapId(SPATIAL, "enc1")], expected.clamp(0, 1), atol=1e-5, rtol=0)
    starts = [(0, 8, 16)] * dims
    window_means = [planes[(..., *(slice(s, s + 16) for s in at))].mean() for at in itertools.product(*starts)]
    torch.testing.assert_close(pred.channels[MapId(CHANNEL, "enc0")], torch.stack(window_means).mean()[None])


@pytest.mark.parametrize("dims", [2, 3])
def test_tta_mirrors_maps_back_so_a_flipped_input_gives_flipped_maps(attention_models, dims):
    """One window, so that the check is exact: MONAI samples its Gaussian weights onto a coarser grid by nearest
    neighbour, which is not mirror-symmetric, so overlapping windows blend coarse maps a little asymmetrically."""
    model = randomised(attention_models[dims])
    image = torch.randn(1, *(16,) * dims)
    predictor = Predictor(model, tta=True, precision="32", sw_batch_size=4)
    assert len(predictor.flips) == 2**dims
    pred, flipped = predictor.predict(image, maps=True), predictor.predict(image.flip(1), maps=True)
    level0 = pred.maps[MapId(SPATIAL, "dec0")]
    assert (level0 - level0.flip(1)).abs().max() > 1e-3  # the maps are not symmetric themselves
    for map_id, value in pred.maps.items():
        torch.testing.assert_close(flipped.maps[map_id], value.flip(1), atol=1e-5, rtol=1e-4)
    for map_id, value in pred.channels.items():
        torch.testing.assert_close(flipped.channels[map_id], value, atol=1e-5, rtol=1e-4)


def test_attention_distances_use_the_in_plane_spacing_of_a_2d_network_on_volumes(attention_models):
    model = load_model(attention_models[2])
    plan = dataclasses.replace(model.fingerprint.preprocessing, target_spacing=(3.0, 0.5, 0.7))
    volume = dataclasses.replace(model, fingerprint=dataclasses.replace(model.fingerprint, preprocessing=plan))
    assert map_spacing(dataclasses.replace(volume, meta=dataclasses.replace(model.meta, slice_axis=0)), 2) == (0.5, 0.7)
    assert map_spacing(volume, 3) == (3.0, 0.5, 0.7)


def _oblique(src: Path, dst: Path) -> Path:
    img = nib.load(src)
    c, s = np.cos(0.3), np.sin(0.3)
    affine = np.array([[0, 0.9 * c, -1.3 * s, 10], [0, 0.9 * s, 1.3 * c, -20], [2.1, 0, 0, 5], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj).transpose(2, 0, 1), affine), dst)
    return dst


@pytest.mark.parametrize("dims", [2, 3])
def test_infer_maps_writes_every_kind_in_the_inputs_geometry(
    attention_models, synthetic_2d, synthetic_3d, tmp_path, dims
):
    dataset = synthetic_3d if dims == 3 else synthetic_2d
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    src = min((dataset / "imagesTr").iterdir())
    if dims == 3:
        _oblique(src, inputs / "case.nii.gz")
    else:
        (inputs / "case.nii.gz").write_bytes(src.read_bytes())
    zeros = np.zeros((13, 11, 9)[:dims], np.float32)
    nib.save(nib.Nifti1Image(zeros, np.diag([1.5, 1.0, 2.0, 1.0])), inputs / "blank.nii.gz")
    args = ["infer", "--model", str(attention_models[dims]), "--input", str(inputs), "--output", str(out)]
    assert main([*args, "--no-tta", "--precision", "32", "--gates", "--maps"]) == 0
    ids = load_model(attention_models[dims]).net.map_ids()
    ref = nib.load(inputs / "case.nii.gz")
    for map_id in ids:
        if map_id.kind == CHANNEL:
            continue
        written = nib.load(out / "maps" / f"case_{map_id.key}.nii.gz")
        assert written.shape == ref.shape and np.allclose(written.affine, ref.affine)
        assert nib.load(out / "maps" / f"blank_{map_id.key}.nii.gz").shape == zeros.shape
    gate = np.asarray(nib.load(out / "gates" / "case_level0.nii.gz").dataobj)  # --gates as before, same map
    assert gate.shape == ref.shape and np.array_equal(gate, nib.load(out / "maps" / "case_gate_level0.nii.gz").dataobj)
    channels = json.loads((out / "maps" / "case_channel.json").read_text())
    assert channels.keys() == {m.key for m in ids if m.kind == CHANNEL}
    assert len(channels["channel_enc1"]) == 8 and len(channels["channel_dec0"]) == 4
    assert all(0 <= w <= 1 for ws in channels.values() for w in ws)  # sigmoid weights
    blank = json.loads((out / "maps" / "blank_channel.json").read_text())
    assert blank == dict.fromkeys(channels)  # the network never saw a blank scan
    assert not list(out.rglob(".tmp-*"))
    (out / "maps" / "case_self_enc2b0_h1.nii.gz").unlink()  # a rerun redoes exactly the incomplete case
    assert main([*args, "--no-tta", "--precision", "32", "--gates", "--maps"]) == 0
    cases = json.loads((out / "predictions.json").read_text())["cases"]
    assert (cases["case"]["status"], cases["blank"]["status"]) == ("ok", "exists")
    assert (out / "maps" / "case_self_enc2b0_h1.nii.gz").is_file()


def test_gates_alone_write_no_maps(attention_models, synthetic_3d, tmp_path):
    src = min((synthetic_3d / "imagesTr").iterdir())
    out = tmp_path / "out"
    args = ["infer", "--model", str(attention_models[3]), "--input", str(src), "--output", str(out), "--gates"]
    assert main([*args, "--no-tta"]) == 0
    assert sorted(p.name for p in (out / "gates").iterdir()) == [f"{src.name[:-7]}_level{i}.nii.gz" for i in (0, 1)]
    assert not (out / "maps").exists()


def test_infer_maps_kinds_are_checked_with_a_suggestion():
    assert CONFIG_MAP_KINDS == MAP_KINDS
    assert InferConfig(maps=("self", "channel")).maps == ("self", "channel")
    with pytest.raises(
        ConfigError,
        match=r"infer.maps\[\] must be one of gate, spatial, channel, self, got 'slef'.*"
        r"Did you mean 'self'",
    ):
        InferConfig(maps=("spatial", "slef"))
