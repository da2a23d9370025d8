"""Whole-case prediction: Gaussian sliding windows, mirroring test-time augmentation inside each window, attention
maps stitched like the probabilities on their own grids (`seg.infer.maps`); an ensemble averages its members'
softmax and maps. Works on preprocessed arrays (C, *spatial); see `seg.infer.cases` for files in and out."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from seg.infer.maps import PROBABILITIES, MapsArg, StitchedCase, WindowMaps, map_request, to_grid
from seg.model_folder import ModelBundle
from seg.models.maps import GATE, MapId, MapRequest
from seg.models.predict import sliding_window
from seg.models.stitch import gaussian_weight
from seg.runtime import InferSettings, tune_inference
from seg.runtime.tune import autocast
from seg.runtime.tune_cache import model_key


@dataclass
class Prediction:
    """`probabilities` (K, *spatial) float32, softmax averaged over windows (and flips); None when the prediction
    kept only the arg-max (`label_map`, made as the windows landed)."""

    probabilities: torch.Tensor | None
    maps: dict[MapId, torch.Tensor] = field(default_factory=dict)  # (1, *the map's own grid) float32, stitched
    channels: dict[MapId, torch.Tensor] = field(default_factory=dict)  # (C,) float32, mean over windows and flips
    label_map: torch.Tensor | None = None  # (*spatial) uint8
    finite: bool = True  # every probability was finite

    def labels(self) -> torch.Tensor:
        if self.label_map is not None:
            return self.label_map
        return self.probabilities.argmax(0).to(torch.uint8)

    @property
    def shape(self) -> tuple[int, ...]:
        """The image grid's spatial shape."""
        return tuple(self.label_map.shape if self.label_map is not None else self.probabilities.shape[1:])

    def on_image_grid(self, map_id: MapId) -> torch.Tensor:
        """One map resampled to the image grid, (1, *spatial): full size, so one at a time."""
        return to_grid(self.maps[map_id], self.shape)

    @property
    def gates(self) -> dict[str, torch.Tensor]:
        """Gate maps on the image grid by level name ("level{i}" -> (1, *spatial) in [0, 1]), the heads' mean."""
        return {m.site: self.on_image_grid(m) for m in self.maps if m.kind == GATE and m.head is None}


def mirror_axes(spatial_dims: int, tta: bool, allowed: Sequence[int] | None = None) -> list[tuple[int, ...]]:
    """Every subset of the `allowed` spatial axes (default all), as tensor dims of a (B, C, *spatial) batch;
    [()] without TTA."""
    axes = [2 + a for a in (range(spatial_dims) if allowed is None else allowed)]
    if not tta:
        return [()]
    return [c for r in range(len(axes) + 1) for c in itertools.combinations(axes, r)]


class Predictor:
    """Predicts one preprocessed case at a time with a loaded model (`seg.infer.model_io.load_model`).

    `precision` ("auto", "32", "bf16", "16") and `sw_batch_size` ("auto" or a number) are resolved once, by timing
    the network's forward at its window on this machine (`seg.runtime.tune_inference`, cached); the result is
    `self.settings`. The window (`roi_size`) is the model's training patch unless given."""

    def __init__(
        self,
        model: ModelBundle,
        overlap: float = 0.5,
        tta: bool = True,
        precision: str = "auto",
        sw_batch_size: int | str = "auto",
        device: str | torch.device = "cpu",
        roi_size: Sequence[int] | None = None,
    ):
        self.model = model
        self.roi_size = tuple(int(r) for r in roi_size) if roi_size is not None else model.patch_size
        self.device = torch.device(device)
        self.net = model.net.to(self.device).eval()
        self.net_dims = model.config.model.spatial_dims
        self.backend = getattr(self.net, "backend", "torch")  # "onnxruntime": an exported float32 graph
        self.settings: InferSettings = tune_inference(
            self.net,
            self.roi_size,
            model.config.model.in_channels,
            precision if self.backend == "torch" else "32",  # autocast does not reach an ONNX graph
            sw_batch_size,
            self.device,
            model_key(model.config.model) + ("" if self.backend == "torch" else f" {self.backend}"),
        )
        self.overlap, self.tta = overlap, tta
        self.precision, self.sw_batch_size = self.settings.precision, self.settings.sw_batch_size
        self.flips = mirror_axes(self.net_dims, tta, model.mirrored_axes)

    @property
    def gate_names(self) -> list[str]:
        return list(self.net.gate_names)

    def map_ids(self, kinds: Sequence[str]) -> list[MapId]:
        """The maps of these kinds that `predict(image, maps=kinds)` returns (in `maps` or `channels`)."""
        listed = getattr(self.net, "map_ids", list)()  # a network without the maps API has none
        return [m for m in listed if m.kind in kinds]

    def describe(self) -> str:
        return self.settings.describe() + ("" if self.backend == "torch" else f"; backend {self.backend}")

    def _autocast(self):
        return autocast(self.device, self.precision)

    def _window(self, request: MapRequest | None, maps: WindowMaps):
        """The window function: softmax and spatial maps averaged over flips (each mirrored back), keyed by
        PROBABILITIES and map keys; channel weights go to `maps` directly."""
        net, flips = self.net, self.flips

        def fn(x: torch.Tensor) -> dict[str, torch.Tensor]:
            acc: dict[str, torch.Tensor] = {}
            for axes in flips:
                xi = x.flip(axes) if axes else x
                with self._autocast():
                    if request is None:
                        out = net.outputs(xi, gates=False, deep_supervision=False)
                    else:
                        out = net.outputs(xi, maps=request, deep_supervision=False)
                outputs = {PROBABILITIES: torch.softmax(out.logits.float(), dim=1)}
                for map_id, value in out.maps.items():
                    if map_id.is_vector:
                        maps.add_channels(map_id, value)  # (B, C): no spatial axes to mirror back
                    else:
                        outputs[map_id.key] = value.float()  # (B, 1, *window / factor)
                for k, v in outputs.items():
                    v = v.flip(axes) if axes else v
                    acc[k] = acc[k] + v if k in acc else v
            return {k: v / len(flips) for k, v in acc.items()}

        return fn

    @torch.inference_mode()
    def warm_up(self) -> None:
        """The backends' kernel selection for a full batch of windows and for a last, single one, and the window
        weights, before the first case: costs of the process, not of any case."""
        for batch in dict.fromkeys((self.sw_batch_size, 1)):
            x = torch.zeros(batch, self.model.config.model.in_channels, *self.roi_size, device=self.device)
            with self._autocast():
                self.net(x)
        gaussian_weight(self.roi_size, self.device)

    @torch.inference_mode()
    def predict(
        self, image: np.ndarray | torch.Tensor, maps: MapsArg = None, gates: bool = False, probabilities: bool = True
    ) -> Prediction:
        """`image`: preprocessed (C, *spatial) float32. `maps`: True (every kind), kinds, or a `MapRequest` (its
        query points are ignored); `gates`: the gate maps too. Maps cost time and memory: none by default.
        `probabilities` False keeps only the label map, made as the windows land: no (K, *spatial) array at all."""
        x = torch.as_tensor(image, dtype=torch.float32, device=self.device)[None]
        slice_axis = self.model.slice_axis if self.model.slice_axis is not None else 2
        request = map_request(self.model, maps, gates, self.net_dims)
        if request is not None and not self.map_ids(request.kinds):
            request = None  # none of these kinds here: nothing to record, and the fused attention kernel stays
        window_maps = WindowMaps()
        sink = StitchedCase(probabilities)
        fn = self._window(request, window_maps)
        sliding_window(fn, x, self.roi_size, self.net_dims, self.overlap, self.sw_batch_size, slice_axis, sink)
        del x
        return sink.prediction(window_maps.channels())


class EnsemblePredictor:
    """Averages the softmax of several members' `Predictor`s, each after its own sliding window and TTA (a member
    keeps its patch size and mirrored axes). Same surface as `Predictor`: the first member's bundle is `model`
    (preprocessing, class names) and its speed settings are `settings`; members are checked compatible when
    loaded (`seg.infer.model_io.load_models`)."""

    def __init__(self, members: Sequence[Predictor]):
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = list(members)
        self.model = self.members[0].model
        self.settings = self.members[0].settings

    @property
    def gate_names(self) -> list[str]:
        """Levels every member has: only those can be averaged."""
        return [g for g in self.members[0].gate_names if all(g in m.gate_names for m in self.members[1:])]

    def map_ids(self, kinds: Sequence[str]) -> list[MapId]:
        """The maps of these kinds every member has: only those can be averaged."""
        others = [set(m.map_ids(kinds)) for m in self.members[1:]]
        return [k for k in self.members[0].map_ids(kinds) if all(k in o for o in others)]

    def describe(self) -> str:
        settings = dict.fromkeys(m.describe() for m in self.members)  # distinct, in order
        return f"ensemble of {len(self.members)} models; " + " | ".join(settings)

    def warm_up(self) -> None:
        for m in self.members:
            m.warm_up()

    @torch.inference_mode()
    def predict(
        self, image: np.ndarray | torch.Tensor, maps: MapsArg = None, gates: bool = False, probabilities: bool = True
    ) -> Prediction:
        """The members' probabilities and the maps all of them have, averaged (a member's map on another grid is
        resampled to the first's); summed in place, so memory is that of two predictions, not one per member.
        The average needs every member's probabilities: `probabilities` False changes nothing here."""
        total = self.members[0].predict(image, maps, gates)
        for m in self.members[1:]:
            pred = m.predict(image, maps, gates)
            total.probabilities += pred.probabilities
            total.maps = {
                k: v.add_(to_grid(pred.maps[k], v.shape[1:])) for k, v in total.maps.items() if k in pred.maps
            }
            total.channels = {
                k: v.add_(pred.channels[k])
                for k, v in total.channels.items()
                if k in pred.channels and pred.channels[k].shape == v.shape
            }
            del pred
        n = len(self.members)
        total.probabilities /= n
        total.maps = {k: v.div_(n) for k, v in total.maps.items()}
        total.channels = {k: v.div_(n) for k, v in total.channels.items()}
        total.label_map, total.finite = None, bool(torch.isfinite(total.probabilities).all())  # of the average
        return total


def make_predictor(models: Sequence[ModelBundle], *args, **kwargs) -> Predictor | EnsemblePredictor:
    """A `Predictor` for one model (exactly the single-model path), an `EnsemblePredictor` of one `Predictor` per
    member otherwise; `args` and `kwargs` as `Predictor` takes them after the model."""
    if len(models) == 1:
        return Predictor(models[0], *args, **kwargs)
    return EnsemblePredictor([Predictor(m, *args, **kwargs) for m in models])
