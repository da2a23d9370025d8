"""One preprocessed case's maps: probabilities (the predictor), every attention map of the network (gate, spatial and
self-attention maps on the case grid, channel weights; `seg.models.maps`), class activation maps per foreground
class on the target layers, plain CAM of the 1x1 head, the head's input features (for PCM), and on request each
self-attention head's attention from query points (`seg.explain.queries`).

Segmentation Grad-CAM (Vinogradova et al. 2020): the score of class k is the sum of its logit over the voxels the
case's prediction assigns to k; when nothing is predicted as k, the sum over the whole volume (recorded in
`CaseMaps.fallback`). Two passes: the predictor gives the case-level prediction, then a second pass does forward +
backward per window, with the predicted masks riding along as extra input channels so each window sees exactly its
part of them. A case of at most `whole_case_voxels` voxels is one window (exact, no seams); larger ones use
windows of the model's patch size, which bounds memory (Grad-CAM's channel weights are then per window).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from seg.config import ConfigError
from seg.errors import ModelDataMismatch
from seg.explain.cam import cam_map, has_plain_cam, plain_cam
from seg.explain.map_grid import recorded_forward, value_on_grid
from seg.explain.queries import Point, centroids, query_maps
from seg.infer.predictor import Predictor
from seg.model_folder import ModelBundle
from seg.models.layers import interp_mode
from seg.models.maps import CHANNEL, GATE, SELF, SPATIAL, MapId, MapRequest
from seg.models.predict import sliding_window

RECORDED = MapRequest(kinds=(GATE, SPATIAL, CHANNEL, SELF))


@dataclass
class CaseMaps:
    probabilities: torch.Tensor  # (K, *S) softmax
    cams: dict[str, torch.Tensor]  # target layer -> (K - 1, *S) >= 0, foreground classes 1..K-1 in order
    plain: torch.Tensor | None  # (K - 1, *S) >= 0; None when the head is not a 1x1 convolution
    features: torch.Tensor | None  # (C_f, *S) the head's input features; None unless asked for
    fallback: list[bool]  # per foreground class: nothing predicted, the score is the whole volume's logit
    spatial: dict[MapId, torch.Tensor] = field(default_factory=dict)  # gate, spatial, self maps: (*S) each
    channels: dict[MapId, torch.Tensor] = field(default_factory=dict)  # (C,) weights, mean over windows
    queries: dict[MapId, torch.Tensor] = field(default_factory=dict)  # (*S) attention from query `query`, sum 1
    query_points: dict[int, Point] = field(default_factory=dict)  # query number -> voxel of the case grid

    @property
    def gates(self) -> dict[str, torch.Tensor]:
        """The gate maps by level (a multi-head gate's mean): (*S) in [0, 1]."""
        return {m.site: v for m, v in self.spatial.items() if m.kind == GATE and m.head is None}


class MapEngine:
    """Computes `CaseMaps` for preprocessed images (C, *S) with a loaded model, on the CPU."""

    def __init__(
        self,
        model: ModelBundle,
        layers: Sequence[str],
        method: str = "gradcam",
        overlap: float = 0.5,
        whole_case_voxels: int = 64**3,
        sw_batch_size: int = 1,
        precision: str = "32",
    ):
        self.model, self.net = model, model.net.eval()
        self.layers, self.method = list(layers), method
        self.overlap, self.whole_case_voxels, self.sw_batch_size = overlap, whole_case_voxels, sw_batch_size
        self.precision = precision  # of the prediction pass; the CAM pass (forward + backward) runs in float32
        self.modules = dict(self.net.named_modules())
        self.net_dims = model.config.model.spatial_dims
        self.num_classes = model.config.model.out_channels
        if self.num_classes < 2:
            raise ModelDataMismatch(
                f"{model.source}: CAMs need a background and >= 1 foreground class, got {self.num_classes} classes."
            )
        self.head = getattr(self.net, "head", None)
        self.plain_ok = self.head is not None and has_plain_cam(self.head)
        self.multiple = tuple(getattr(self.net, "size_multiple", (1,) * self.net_dims))
        self.slice_axis = model.slice_axis if model.slice_axis is not None else 2
        spacing = tuple(model.fingerprint.preprocessing.target_spacing)  # the preprocessed grid's, in mm
        if len(spacing) == self.net_dims + 1:  # a 2D network on volumes sees the plane across the slice axis
            spacing = spacing[: self.slice_axis] + spacing[self.slice_axis + 1 :]
        self.spacing = spacing
        self._map_ids: dict[str, MapId] = {}  # the stitched outputs' names of the attention maps

    def roi(self, shape: Sequence[int]) -> tuple[int, ...]:
        """Window for an image of spatial `shape`: the whole case (a whole slice for a 2D net on 3D volumes) when it
        has at most `whole_case_voxels` voxels, else the model's patch size."""
        net_shape = tuple(shape)
        if len(net_shape) == self.net_dims + 1:
            net_shape = net_shape[: self.slice_axis] + net_shape[self.slice_axis + 1 :]
        return net_shape if math.prod(net_shape) <= self.whole_case_voxels else tuple(self.model.patch_size)

    def maps(
        self, image: np.ndarray | torch.Tensor, features: bool = False, queries: Sequence[Point] | None = None
    ) -> CaseMaps:
        """`image`: preprocessed (C, *S) float32. `features`: also return the head's input features. `queries`:
        voxels of the case grid whose self-attention is wanted besides the predicted classes' centroids (None: no
        query maps at all)."""
        x = torch.as_tensor(image, dtype=torch.float32)
        roi = self.roi(x.shape[1:])
        predictor = Predictor(
            self.model,
            self.overlap,
            tta=False,
            precision=self.precision,
            sw_batch_size=self.sw_batch_size,
            roi_size=roi,
        )
        pred = predictor.predict(x)
        labels = pred.labels()
        masks, fallback = [], []
        for k in range(1, self.num_classes):
            m = labels == k
            fallback.append(not bool(m.any()))
            masks.append(m if m.any() else torch.ones_like(m))
        mask = torch.stack(masks).float().clone()  # (K - 1, *S); clone: a normal tensor, not an inference tensor
        channels: dict[MapId, list[torch.Tensor]] = {}
        out = sliding_window(
            self._window(x.shape[0], features, channels),
            torch.cat([x, mask])[None],
            roi,
            self.net_dims,
            self.overlap,
            self.sw_batch_size,
            self.slice_axis,
        )
        fg = range(1, self.num_classes)
        cams = {layer: torch.cat([out[f"cam/{layer}/{k}"][0] for k in fg]).clamp_min_(0) for layer in self.layers}
        maps = CaseMaps(
            probabilities=pred.probabilities,
            cams=cams,
            plain=out["plain"][0].clamp_min_(0) if "plain" in out else None,
            features=out["features"][0] if "features" in out else None,
            fallback=fallback,
            spatial={m: out[m.key][0, 0] for m in sorted(self._ids(out))},
            channels={m: torch.cat(v).mean(0) for m, v in sorted(channels.items())},
        )
        if queries is not None and any(m.kind == SELF for m in maps.spatial):
            maps.query_points = {**centroids(labels, self.num_classes), **self._user_queries(queries)}
            slices = self.slice_axis if len(roi) < x.ndim - 1 else None
            maps.queries = query_maps(self.net, x, maps.query_points, roi, self.spacing, slices)
        return maps

    def _user_queries(self, points: Sequence[Point]) -> dict[int, Point]:
        return {self.num_classes - 1 + i: tuple(p) for i, p in enumerate(points)}

    def _ids(self, out: dict[str, torch.Tensor]) -> list[MapId]:
        return [self._map_ids[k] for k in out if k in self._map_ids]

    def _window(self, c_in: int, want_features: bool, channels: dict[MapId, list[torch.Tensor]]):
        """Window function for `sliding_window`: input (B, C + K - 1, *win) = image channels + predicted masks.
        Channel weights are summed into `channels` per window (vectors cannot be stitched)."""
        net, layers, k_all = self.net, self.layers, self.num_classes
        request = MapRequest(RECORDED.kinds, spacing=self.spacing)

        def fn(x: torch.Tensor) -> dict[str, torch.Tensor]:
            win = tuple(x.shape[2:])
            image = x[:, :c_in].detach().requires_grad_(True)  # every activation then has a gradient path
            masks = x[:, c_in:]
            acts: dict[str, torch.Tensor] = {}
            hooks = [self.modules[n].register_forward_hook(self._keep(acts, n)) for n in layers]
            if self.head is not None and (self.plain_ok or want_features):
                hooks.append(self.head.register_forward_pre_hook(lambda m, args: acts.__setitem__(" head", args[0])))
            out: dict[str, torch.Tensor] = {}
            try:
                with torch.enable_grad():
                    logits, maps = recorded_forward(net, image, request)  # (B, K, *win)
                    self._check(acts)
                    targets = [acts[n] for n in layers]
                    for k in range(1, k_all):
                        score = (logits[:, k] * masks[:, k - 1]).sum()  # per window: samples add independently
                        grads = torch.autograd.grad(score, targets, retain_graph=k < k_all - 1, allow_unused=True)
                        for name, a, g in zip(layers, targets, grads, strict=True):
                            cam = cam_map(self.method, a.detach(), g) if g is not None else torch.zeros_like(a[:, :1])
                            out[f"cam/{name}/{k}"] = self._fit(cam, win)
            finally:
                for h in hooks:
                    h.remove()
            for map_id, (value, factor) in maps.items():
                if map_id.kind == CHANNEL:
                    channels.setdefault(map_id, []).append(value.detach().float())  # (B, C)
                    continue
                self._map_ids[map_id.key] = map_id
                out[map_id.key] = value_on_grid(value.detach(), factor, win)
            if " head" in acts:
                f = acts[" head"].detach()  # (B, C_f, *padded win)
                if self.plain_ok:
                    plain = plain_cam(f, self.head)  # a U-Net's head has a background channel, SEAM's classifier not
                    out["plain"] = self._fit(plain[:, 1:] if plain.shape[1] == k_all else plain, win)
                if want_features:
                    out["features"] = self._fit(f, win)
            return out

        return fn

    def _keep(self, store: dict[str, torch.Tensor], name: str):
        dims = self.net_dims

        def hook(module, args, output) -> None:
            if isinstance(output, torch.Tensor) and output.ndim == dims + 2:
                store[name] = output

        return hook

    def _check(self, acts: dict[str, torch.Tensor]) -> None:
        missing = [n for n in self.layers if n not in acts]
        if missing:
            raise ConfigError(
                f"analyze.cam_layers: {', '.join(missing)} gave no (B, C, *spatial) tensor in the forward pass (unused "
                f"module, or a tuple output). Pick names listed by `seg layers MODEL`."
            )

    def _fit(self, t: torch.Tensor, win: tuple[int, ...]) -> torch.Tensor:
        """A layer's map (B, C, *s) on the network's padded grid (or a coarser level of it) -> (B, C, *win)."""
        padded = tuple(math.ceil(w / m) * m for w, m in zip(win, self.multiple, strict=True))
        if tuple(t.shape[2:]) != padded:
            t = F.interpolate(t, size=padded, mode=interp_mode(len(win)), align_corners=False)
        return t[(slice(None), slice(None), *(slice(0, w) for w in win))]
