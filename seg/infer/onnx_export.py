"""Export a trained model to ONNX (`seg export MODEL --format onnx --out FILE`), for `seg infer --backend
onnxruntime` and for deployment where torch is not installed.

The graph is float32 with dynamic batch and spatial axes. The U-Net pads an input to its size multiple inside
`outputs`; in the graph that padding is symbolic arithmetic torch.export cannot solve, so the graph takes spatial
sizes that are multiples of the network's (each axis `multiple * n`) and the runtime pads and crops outside it
(`seg.infer.onnx_runtime`), as the network does inside. Its outputs are `logits` and, with `maps`, one output per
attention map of those kinds under its `MapId.key` (`gate_level0`, `spatial_dec1`, `channel_enc2`,
`self_enc2b0_h1`), each on its own grid. Self-attention distances are in mm of the model's preprocessed grid.

The file carries what `seg infer` needs besides the weights (the config, dataset fingerprint and model meta, as a
Lightning checkpoint stores them; the maps' down-sampling and the size multiple) as JSON in the ONNX metadata under
`seg` (the config in it as YAML text, as config.yaml holds it: JSON would turn integer keys such as
`self_attention: {1: window}` into strings), so the .onnx alone is a model."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from torch import nn

from seg.files import atomic_path
from seg.infer.maps import map_spacing
from seg.model_folder import ModelBundle, checkpoint_record
from seg.models.errors import ModelLoadError
from seg.models.maps import MapId, MapRequest

METADATA_KEY = "seg"  # the ONNX metadata_props key of the model's record (JSON)
INPUT, LOGITS = "image", "logits"
OPSET = 18
TOLERANCE = 1e-4  # the largest |ORT - torch| an export may show on its check inputs


@dataclass(frozen=True)
class ExportReport:
    path: Path
    outputs: tuple[str, ...]  # LOGITS, then the map keys
    checked: dict[str, float]  # "<shape>" -> max |ORT - torch| over every output at that input shape


class GraphOutputs(nn.Module):
    """The exported function: an input already padded to the size multiple -> (logits, *maps in `map_ids` order)."""

    def __init__(self, net: nn.Module, map_ids: Sequence[MapId], spacing: Sequence[float]):
        super().__init__()
        self.net, self.map_ids = net, list(map_ids)
        kinds = tuple(dict.fromkeys(m.kind for m in self.map_ids))
        self.request = MapRequest(kinds=kinds, spacing=tuple(spacing)) if kinds else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.net.outputs(x, maps=self.request or False, deep_supervision=False)
        return (out.logits, *(out.maps[m] for m in self.map_ids))


def export_onnx(model: ModelBundle, out: str | Path, maps: Sequence[str] = (), check: bool = True) -> ExportReport:
    """Write `model` as ONNX to `out` (atomically), checked with `onnx.checker`; with `check`, also run by ONNX
    Runtime at the padded training patch and a larger size, and compared with torch."""
    import onnx

    net = model.net.eval()
    multiple = _size_multiple(net, model.source)
    dims = model.config.model.spatial_dims
    map_ids = [m for m in net.map_ids() if m.kind in maps] if maps else []
    graph = GraphOutputs(net, map_ids, map_spacing(model, dims)).eval()
    example = example_input(model, multiple, batch=2)  # batch 2: an example batch of 1 would fix the batch axis
    proto = _export(graph, example, multiple, [m.key for m in map_ids])
    record = checkpoint_record(model.config, model.fingerprint, model.meta)
    record = {
        **record,
        "config": yaml.safe_dump(record["config"], sort_keys=False),  # YAML text: JSON would make int keys strings
        "size_multiple": list(multiple),
        "maps": _factors(graph, example),
        "exported_with": {"torch": torch.__version__, "onnx": onnx.__version__},
    }
    onnx.helper.set_model_props(proto, {METADATA_KEY: json.dumps(record)})
    proto.doc_string = f"seg model exported from {model.source}"
    onnx.checker.check_model(proto, full_check=True)
    out = Path(out)
    with atomic_path(out) as tmp:
        onnx.save_model(proto, str(tmp))
        checked = _compare(graph, tmp, example, multiple) if check else {}
    return ExportReport(out, (LOGITS, *(m.key for m in map_ids)), checked)


def example_input(model: ModelBundle, multiple: Sequence[int], batch: int = 1) -> torch.Tensor:
    """Random (batch, C, *patch rounded up to the size multiple) float32."""
    size = [max(1, math.ceil(p / m)) * m for p, m in zip(model.patch_size, multiple, strict=True)]
    generator = torch.Generator().manual_seed(0)
    return torch.randn(batch, model.config.model.in_channels, *size, generator=generator)


def _size_multiple(net: nn.Module, source: str) -> tuple[int, ...]:
    multiple = getattr(net, "size_multiple", None)
    if multiple is None or not hasattr(net, "outputs"):
        raise ModelLoadError(
            f"{source}: a {type(net).__name__} cannot be exported (it has no `outputs` and `size_multiple`); "
            f"export an AttentionUNet model."
        )
    return tuple(int(m) for m in multiple)


def _factors(graph: GraphOutputs, example: torch.Tensor) -> dict[str, list[int]]:
    """Each exported map's grid down-sampling relative to the input ([] for channel weights), from one forward."""
    if graph.request is None:
        return {}
    with torch.inference_mode():
        factors = graph.net.outputs(example[:1], maps=graph.request, deep_supervision=False).factors
    return {m.key: list(factors[m]) for m in graph.map_ids}


def _export(graph: GraphOutputs, example: torch.Tensor, multiple: Sequence[int], map_keys: list[str]):
    """The ONNX ModelProto of `graph` (torch.export-based exporter), every spatial axis `multiple * n`."""
    from torch.export import Dim

    spatial = {2 + a: m * Dim(f"n{a}", min=1, max=4096) for a, m in enumerate(multiple)}
    program = torch.onnx.export(
        graph,
        (example,),
        dynamo=True,
        opset_version=OPSET,
        input_names=[INPUT],
        output_names=[LOGITS, *map_keys],
        dynamic_shapes=({0: Dim("batch", min=1, max=1024), **spatial},),
        custom_translation_table=_translations(),
        external_data=False,
        verbose=False,
    )
    return program.model_proto


def _translations() -> dict:
    """ONNX for what the exporter has none for: `torch.cdist` (self-attention distances), as the plain Euclidean
    distance of every pair of points."""
    from onnxscript import opset18 as op

    def cdist(x1, x2, p: float = 2.0, compute_mode: int = 0):
        diff = op.Sub(op.Unsqueeze(x1, [-2]), op.Unsqueeze(x2, [-3]))  # (..., Nq, Nk, D)
        return op.Sqrt(op.ReduceSum(op.Mul(diff, diff), [-1], keepdims=0))

    return {torch.ops.aten._cdist_forward.default: cdist}


def _compare(graph: GraphOutputs, path: Path, example: torch.Tensor, multiple: Sequence[int]) -> dict[str, float]:
    """Max |ORT - torch| at the example's shape and at one more multiple per axis (the dynamic axes); a bigger
    difference than `TOLERANCE` is a bug in the export, not the user's to fix."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    runner = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    larger = torch.randn(1, example.shape[1], *(s + m for s, m in zip(example.shape[2:], multiple, strict=True)))
    checked = {}
    for x in (example, larger):
        with torch.inference_mode():
            expected = graph(x)
        got = runner.run(None, {INPUT: x.numpy()})
        worst = max(float((torch.from_numpy(g) - e).abs().max()) for g, e in zip(got, expected, strict=True))
        checked["x".join(map(str, x.shape))] = worst
        if not worst <= TOLERANCE:
            raise RuntimeError(f"ONNX Runtime differs from torch by {worst:.2e} at input {tuple(x.shape)}")
    return checked
