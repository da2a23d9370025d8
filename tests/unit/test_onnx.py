"""`seg export --format onnx` and `seg infer --backend onnxruntime` on tiny 2D and 3D models with every kind of
attention map: the graph passes onnx.checker, equals torch at the export size and at other sizes (dynamic axes),
carries the model's record, outputs the maps `net.outputs` gives, and `seg infer` writes the torch backend's label
maps."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from infer_fixture import tiny_model_folder

from seg.cli import main
from seg.config import ConfigError, InferConfig
from seg.infer.maps import map_spacing
from seg.infer.model_io import load_model, load_models
from seg.infer.onnx_export import METADATA_KEY, export_onnx
from seg.infer.onnx_runtime import OnnxNetwork, load_onnx
from seg.model_folder import load_bundle, save_bundle
from seg.models.errors import ModelLoadError
from seg.models.maps import MapRequest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

ATTENTION = dict(
    self_attention={1: "window", 2: "global"},
    self_attention_heads=2,
    self_attention_window=2,
    decoder_attention="cbam",
    encoder_attention="se",
)
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def exported(tmp_path_factory, synthetic_2d, synthetic_3d) -> dict[int, tuple[Path, Path]]:
    """{dims: (model folder, its .onnx with every map)}: weights drawn anew (untrained maps are flat) and the
    classes' logits centred, so label maps hold every class; then exported by the command."""
    root = tmp_path_factory.mktemp("onnx")
    out = {}
    for dims, dataset in ((2, synthetic_2d), (3, synthetic_3d)):
        model = load_model(tiny_model_folder(root / f"{dims}d", dataset, spatial_dims=dims, **ATTENTION))
        torch.manual_seed(0)
        with torch.no_grad():
            for p in model.net.parameters():
                p.normal_(0, 0.3)
            logits = model.net(torch.randn(1, 1, *(32,) * dims))  # (1, K, *spatial)
            model.net.head.bias -= logits.mean(dim=tuple(range(2, logits.ndim)))[0]  # every class wins somewhere
        folder = save_bundle(root / f"{dims}d" / "random", model.net, model.config, model.fingerprint, model.meta)
        onnx_file = root / f"model{dims}d.onnx"
        assert main(["export", str(folder), "--format", "onnx", "--out", str(onnx_file), "--maps"]) == 0
        out[dims] = (folder, onnx_file)
    return out


@pytest.mark.parametrize("dims", [2, 3])
def test_the_graph_passes_the_checker_and_has_dynamic_batch_and_spatial_axes(exported, dims):
    proto = onnx.load(str(exported[dims][1]))
    onnx.checker.check_model(proto, full_check=True)
    image = proto.graph.input[0].type.tensor_type.shape.dim
    assert [bool(d.dim_param) for d in image] == [True, False, *[True] * dims]  # batch and spatial axes symbolic
    names = [o.name for o in proto.graph.output]
    net = load_bundle(exported[dims][0]).net
    assert names == ["logits", *(m.key for m in net.map_ids())]


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("size", ["export", "other"])
def test_onnxruntime_logits_equal_torch_at_the_export_size_and_another(exported, dims, size):
    torch_net = load_bundle(exported[dims][0]).net
    onnx_model = load_onnx(exported[dims][1])
    shape = (1, *onnx_model.patch_size) if size == "export" else (3, *(20, 36, 12)[:dims])  # no multiples of 8: padded
    x = torch.randn(1 if size == "export" else 3, 1, *shape[1:], generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected, got = torch_net(x), onnx_model.net(x)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() <= TOLERANCE


@pytest.mark.parametrize("dims", [2, 3])
def test_the_maps_outputs_equal_the_networks_own(exported, dims):
    model = load_bundle(exported[dims][0])
    onnx_net = load_onnx(exported[dims][1]).net
    x = torch.randn(2, 1, *(24, 16, 40)[:dims], generator=torch.Generator().manual_seed(2))
    request = MapRequest(spacing=map_spacing(model, dims))
    with torch.inference_mode():
        expected = model.net.outputs(x, maps=request, deep_supervision=False)
        got = onnx_net.outputs(x, maps=True)
    assert sorted(got.maps) == sorted(expected.maps) == sorted(model.net.map_ids())
    for map_id, value in expected.maps.items():
        assert got.maps[map_id].shape == value.shape, map_id.key
        assert (got.maps[map_id] - value).abs().max() <= TOLERANCE, map_id.key
    gates_only = onnx_net.outputs(x, maps=["gate"])
    assert {m.kind for m in gates_only.maps} == {"gate"} and onnx_net.gate_names == model.net.gate_names


def test_the_file_carries_the_models_record(exported):
    folder, onnx_file = exported[3]
    model, loaded = load_bundle(folder), load_onnx(onnx_file)
    assert isinstance(loaded.net, OnnxNetwork)
    assert loaded.config == model.config and loaded.meta == model.meta
    assert loaded.fingerprint.to_dict() == model.fingerprint.to_dict()
    props = {p.key for p in onnx.load(str(onnx_file)).metadata_props}
    assert METADATA_KEY in props


def _infer(model: Path, backend: str, inputs: Path, out: Path) -> int:
    args = ["infer", "--model", str(model), "--input", str(inputs), "--output", str(out), "--probabilities"]
    return main([*args, "--backend", backend, "--precision", "32", "--sw-batch-size", "2", "--num-threads", "1"])


def test_seg_infer_with_onnxruntime_writes_the_torch_backends_label_maps(exported, synthetic_3d, tmp_path):
    folder, onnx_file = exported[3]
    inputs = tmp_path / "in"
    inputs.mkdir()
    for src in sorted((synthetic_3d / "imagesTr").iterdir())[:2]:
        (inputs / src.name).write_bytes(src.read_bytes())
    assert _infer(folder, "torch", inputs, tmp_path / "torch") == 0
    assert _infer(onnx_file, "onnxruntime", inputs, tmp_path / "ort") == 0
    written = sorted(p.name for p in (tmp_path / "torch").glob("*.nii.gz"))
    assert len(written) == 2 and written == sorted(p.name for p in (tmp_path / "ort").glob("*.nii.gz"))
    for name in written:
        a = np.asarray(nib.load(tmp_path / "torch" / name).dataobj)
        b = np.asarray(nib.load(tmp_path / "ort" / name).dataobj)
        assert np.array_equal(a, b) and len(np.unique(a)) > 1  # not trivially equal: more than one class
        pa = np.asarray(nib.load(tmp_path / "torch" / "probabilities" / name).dataobj)
        pb = np.asarray(nib.load(tmp_path / "ort" / "probabilities" / name).dataobj)
        assert np.abs(pa - pb).max() <= TOLERANCE


def test_a_backend_that_does_not_fit_the_model_fails_in_one_line(exported, synthetic_3d, tmp_path, capsys):
    folder, onnx_file = exported[3]
    inputs = sorted((synthetic_3d / "imagesTr").iterdir())[0]
    assert _infer(onnx_file, "torch", inputs, tmp_path / "a") == 2
    assert "--backend onnxruntime" in capsys.readouterr().err
    assert _infer(folder, "onnxruntime", inputs, tmp_path / "b") == 2
    err = capsys.readouterr().err
    assert f"seg export {folder} --format onnx" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(ModelLoadError, match="without seg's metadata"):
        bare = onnx.load(str(onnx_file))
        del bare.metadata_props[:]
        onnx.save(bare, str(tmp_path / "bare.onnx"))
        load_models(str(tmp_path / "bare.onnx"), "onnxruntime")


def test_a_missing_onnxruntime_is_named_with_what_to_install(exported, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    with pytest.raises(ModelLoadError, match=r"onnxruntime, which is not installed: pip install 'seg\[onnx\]'"):
        load_models(str(exported[2][1]), "onnxruntime")


def test_without_maps_the_graph_has_the_logits_only_and_equals_torch(exported, tmp_path):
    """The default export: self-attention on PyTorch's fused kernel, which the exporter translates."""
    model = load_bundle(exported[2][0])
    report = export_onnx(model, tmp_path / "plain.onnx")  # its own check runs ONNX Runtime at two sizes
    assert report.outputs == ("logits",) and max(report.checked.values()) <= TOLERANCE and len(report.checked) == 2
    onnx_net = load_onnx(report.path).net
    assert onnx_net.map_ids() == [] and onnx_net.outputs(torch.zeros(1, 1, 8, 8), maps=True).maps == {}
    x = torch.randn(2, 1, 28, 12, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        assert (onnx_net(x) - model.net(x)).abs().max() <= TOLERANCE


def test_backend_config_is_checked():
    assert InferConfig().backend == "torch"
    with pytest.raises(ConfigError, match="infer.backend"):
        InferConfig(backend="tensorrt")
    with pytest.raises(ConfigError, match="float32"):
        dataclasses.replace(InferConfig(), backend="onnxruntime", precision="bf16")
