"""Whole-case prediction: Gaussian sliding windows, mirroring test-time augmentation inside each window, gate
maps stitched like the probabilities; an ensemble averages its members' softmax. Works on preprocessed arrays
(C, *spatial); see `seg.infer.cases` for files in and out."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from seg.model_folder import ModelBundle
from seg.models.layers import interp_mode
from seg.models.predict import sliding_window
from seg.runtime import InferSettings, tune_inference
from seg.runtime.tune import autocast
from seg.runtime.tune_cache import model_key


@dataclass
class Prediction:
    probabilities: torch.Tensor  # (K, *spatial) float32, softmax averaged over windows (and flips)
    gates: dict[str, torch.Tensor] = field(default_factory=dict)  # level name -> (1, *spatial) float32 in [0, 1]

    def labels(self) -> torch.Tensor:
        return self.probabilities.argmax(0).to(torch.uint8)


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
        self.settings: InferSettings = tune_inference(
            self.net,
            self.roi_size,
            model.config.model.in_channels,
            precision,
            sw_batch_size,
            self.device,
            model_key(model.config.model),
        )
        self.overlap, self.tta = overlap, tta
        self.precision, self.sw_batch_size = self.settings.precision, self.settings.sw_batch_size
        self.flips = mirror_axes(self.net_dims, tta, model.mirrored_axes)

    @property
    def gate_names(self) -> list[str]:
        return list(self.net.gate_names)

    def describe(self) -> str:
        return self.settings.describe()

    def _autocast(self):
        return autocast(self.device, self.precision)

    def _window(self, want_gates: bool):
        net, flips = self.net, self.flips

        def fn(x: torch.Tensor) -> dict[str, torch.Tensor]:
            acc: dict[str, torch.Tensor] = {}
            for axes in flips:
                xi = x.flip(axes) if axes else x
                with self._autocast():
                    out = net.outputs(xi, gates=want_gates, deep_supervision=False)
                maps = {"probabilities": torch.softmax(out.logits.float(), dim=1)}
                for name, g in (out.gates or {}).items():
                    g = g.float()
                    if g.shape[2:] != x.shape[2:]:
                        g = F.interpolate(g, size=x.shape[2:], mode=interp_mode(x.ndim - 2))
                    maps[name] = g
                for k, v in maps.items():
                    v = v.flip(axes) if axes else v
                    acc[k] = acc[k] + v if k in acc else v
            return {k: v / len(flips) for k, v in acc.items()}

        return fn

    @torch.inference_mode()
    def warm_up(self) -> None:
        """One window through the network (and its backends' kernel selection) before the first case."""
        x = torch.zeros(1, self.model.config.model.in_channels, *self.roi_size, device=self.device)
        with self._autocast():
            self.net(x)

    @torch.inference_mode()
    def predict(self, image: np.ndarray | torch.Tensor, gates: bool = False) -> Prediction:
        """`image`: preprocessed (C, *spatial) float32. Gate maps only when `gates` (they cost memory)."""
        x = torch.as_tensor(image, dtype=torch.float32, device=self.device)[None]
        slice_axis = self.model.slice_axis if self.model.slice_axis is not None else 2
        out = sliding_window(
            self._window(gates), x, self.roi_size, self.net_dims, self.overlap, self.sw_batch_size, slice_axis
        )
        probs = out.pop("probabilities")[0].float().cpu()
        return Prediction(probs, {k: v[0].float().cpu().clamp_(0, 1) for k, v in out.items()})


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

    def describe(self) -> str:
        settings = dict.fromkeys(m.describe() for m in self.members)  # distinct, in order
        return f"ensemble of {len(self.members)} models; " + " | ".join(settings)

    def warm_up(self) -> None:
        for m in self.members:
            m.warm_up()

    @torch.inference_mode()
    def predict(self, image: np.ndarray | torch.Tensor, gates: bool = False) -> Prediction:
        """The members' probabilities (and gate maps of the levels all have) averaged; summed in place, so memory
        is that of two predictions, not of one per member."""
        total = self.members[0].predict(image, gates)
        for m in self.members[1:]:
            pred = m.predict(image, gates)
            total.probabilities += pred.probabilities
            total.gates = {k: v.add_(pred.gates[k]) for k, v in total.gates.items() if k in pred.gates}
            del pred
        n = len(self.members)
        total.probabilities /= n
        total.gates = {k: v.div_(n) for k, v in total.gates.items()}
        return total


def make_predictor(models: Sequence[ModelBundle], *args, **kwargs) -> Predictor | EnsemblePredictor:
    """A `Predictor` for one model (exactly the single-model path), an `EnsemblePredictor` of one `Predictor` per
    member otherwise; `args` and `kwargs` as `Predictor` takes them after the model."""
    if len(models) == 1:
        return Predictor(models[0], *args, **kwargs)
    return EnsemblePredictor([Predictor(m, *args, **kwargs) for m in models])
