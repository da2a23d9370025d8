"""An exported model (`seg.infer.onnx_export`) run by ONNX Runtime behind the network surface the predictor uses
(`outputs`, `map_ids`, `gate_names`, `forward`), so `seg infer --backend onnxruntime` shares the torch backend's
preprocessing, sliding windows, TTA, stitching and writing: only the network call differs.

ONNX Runtime's graph is loaded on the first call with as many intra-op threads as torch has then (`seg infer` sets them
from infer.num_threads before predicting), so both backends run at the same threads."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from torch import nn

from seg.infer.onnx_export import INPUT, LOGITS, METADATA_KEY
from seg.model_folder import ModelBundle, read_record
from seg.models.errors import ModelLoadError
from seg.models.maps import GATE, MapId, MapRequest
from seg.models.unet import UNetOutput

BACKEND = "onnxruntime"
SUFFIX = ".onnx"
INSTALL = "pip install 'seg[onnx]' (onnxruntime)"


def onnxruntime_module(source: str):
    try:
        import onnxruntime
    except ImportError:
        raise ModelLoadError(
            f"{source}: running an ONNX model needs onnxruntime, which is not installed: {INSTALL}."
        ) from None
    return onnxruntime


def load_onnx(path: str | Path) -> ModelBundle:
    """An exported .onnx as a `ModelBundle` whose `net` is an `OnnxNetwork`; config, fingerprint and meta come from
    the file's metadata."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(
            f"{path}: no such ONNX file. Export one first: seg export MODEL --format onnx --out {path}"
        )
    ort = onnxruntime_module(str(path))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # only its metadata is read
    options.intra_op_num_threads = 1
    try:
        props = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).get_modelmeta()
    except Exception as e:  # noqa: BLE001 -- a truncated or foreign file
        raise ModelLoadError(f"{path}: not a readable ONNX model ({type(e).__name__}). Export it again.") from None
    text = props.custom_metadata_map.get(METADATA_KEY)
    if not text:
        raise ModelLoadError(f"{path}: an ONNX model without seg's metadata. Export it with `seg export`.")
    record = json.loads(text)
    record["config"] = yaml.safe_load(record["config"])
    config, fingerprint, meta = read_record(record, str(path))
    net = OnnxNetwork(path, config.model.spatial_dims, record["size_multiple"], record.get("maps") or {})
    return ModelBundle(net, config, fingerprint, meta, str(path))


class OnnxNetwork(nn.Module):
    """The exported graph as a network: pads the input to the size multiple, runs ONNX Runtime on the CPU, crops
    the logits and maps back (the U-Net does the same inside its own forward). No parameters, nothing to train."""

    backend = BACKEND

    def __init__(self, path: Path, spatial_dims: int, size_multiple: Sequence[int], maps: dict[str, list[int]]):
        super().__init__()
        self.path, self.spatial_dims = Path(path), spatial_dims
        self.size_multiple = tuple(int(m) for m in size_multiple)
        self.factors = {MapId.parse(k): tuple(v) for k, v in maps.items()}
        self._runner = None

    def __deepcopy__(self, memo) -> OnnxNetwork:
        return self  # stateless: a copy (e.g. for timing) may share the loaded graph

    def map_ids(self) -> list[MapId]:
        return sorted(self.factors, key=lambda m: m.key)

    @property
    def gate_names(self) -> list[str]:
        return [m.site for m in self.map_ids() if m.kind == GATE and m.head is None]

    def runner(self):
        if self._runner is None:
            ort = onnxruntime_module(str(self.path))
            options = ort.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            options.inter_op_num_threads = 1
            self._runner = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        return self._runner

    def outputs(
        self,
        x: torch.Tensor,
        maps: bool | Sequence[str] | MapRequest | None = None,
        deep_supervision: bool = False,
        gates: bool = True,
    ) -> UNetOutput:
        """As `AttentionUNet.outputs`: the maps asked for that the graph has (no deep supervision, no query maps;
        distances in the mm the export recorded)."""
        request = MapRequest.of(maps if maps is not None else gates and (GATE,))
        wanted = [m for m in self.map_ids() if request is not None and m.kind in request.kinds]
        size = tuple(x.shape[2:])
        padded = self._pad(x)
        results = self.runner().run([LOGITS, *(m.key for m in wanted)], {INPUT: padded.detach().cpu().numpy()})
        values = [torch.from_numpy(r).to(x.device) for r in results]
        out = UNetOutput(logits=_crop(values[0], size))
        for map_id, value in zip(wanted, values[1:], strict=True):
            factor = self.factors[map_id]
            out.maps[map_id] = (
                _crop(value, [math.ceil(s / f) for s, f in zip(size, factor, strict=True)]) if factor else value
            )
            out.factors[map_id] = factor
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outputs(x, maps=False).logits

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        """Zero-padded at the far end of each axis to the size multiple, as `AttentionUNet` pads."""
        if x.ndim != self.spatial_dims + 2:
            raise ValueError(
                f"{self.path}: expected a (B, C, *{self.spatial_dims} spatial axes) input, got {tuple(x.shape)}"
            )
        pad: list[int] = []
        for s, m in zip(reversed(x.shape[2:]), reversed(self.size_multiple), strict=True):  # F.pad: last axis first
            pad += [0, math.ceil(s / m) * m - s]
        return F.pad(x.float(), pad) if any(pad) else x.float()


def _crop(t: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return t[(slice(None), slice(None), *(slice(0, s) for s in size))]
