"""Attention maps over a whole case: which maps a prediction asks the network for, how each window's maps travel
through the sliding-window stitching on their own grids, and how a stitched map reaches the image grid.

A spatial map (gate, spatial, self) is stitched on its own grid (the window's size divided by the map's
down-sampling, `seg.models.stitch`), never at full resolution: a 512x512x400 volume's full-resolution float map is
420 MB and a self-attention model has some fifteen maps. A map is resampled to the image grid only when it is
written, one at a time. Channel weights, one vector per window, are averaged over windows and flips."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from seg.model_folder import ModelBundle
from seg.models.layers import interp_mode
from seg.models.maps import GATE, SPATIAL, MapId, MapRequest

MapsArg = bool | Sequence[str] | MapRequest | None
CLAMPED = (GATE, SPATIAL)  # coefficients in [0, 1]; self maps are distances in mm
PROBABILITIES = "probabilities"


def map_request(model: ModelBundle, maps: MapsArg, gates: bool, net_dims: int) -> MapRequest | None:
    """The request for a whole-case prediction: the kinds asked for (`gates` adds the gate maps), attention
    distances in mm of the model's preprocessed grid, and no query points (those belong to a single forward)."""
    request = MapRequest.of(maps)
    kinds = tuple(request.kinds) if request is not None else ()
    if gates and GATE not in kinds:
        kinds += (GATE,)
    if not kinds:
        return None
    spacing = request.spacing if request is not None and request.spacing is not None else map_spacing(model, net_dims)
    return MapRequest(kinds=kinds, spacing=spacing)


def map_spacing(model: ModelBundle, net_dims: int) -> tuple[float, ...]:
    """The network input's spacing in mm: the preprocessing target spacing; for a 2D network predicting a 3D
    volume slice by slice, that of the two in-plane axes."""
    spacing = tuple(float(s) for s in model.fingerprint.preprocessing.target_spacing)
    if len(spacing) == net_dims:
        return spacing
    slice_axis = model.slice_axis if model.slice_axis is not None else 2
    return tuple(s for axis, s in enumerate(spacing) if axis != slice_axis)


def to_grid(value: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """A stitched map (1, *its grid) resampled (linearly) to `shape`, (1, *shape)."""
    if tuple(value.shape[1:]) == tuple(shape):
        return value
    return F.interpolate(value[None], size=tuple(shape), mode=interp_mode(len(shape)))[0]


class WindowMaps:
    """Channel weights of one case's windows: vectors, which sliding windows cannot stitch, so they are summed here,
    per map, over windows and flips."""

    def __init__(self) -> None:
        self.channel_sum: dict[MapId, torch.Tensor] = {}
        self.channel_count: dict[MapId, int] = {}

    def add_channels(self, map_id: MapId, value: torch.Tensor) -> None:
        """`value`: (B, C) channel weights of a batch of windows."""
        total = value.float().sum(0)
        self.channel_sum[map_id] = self.channel_sum[map_id] + total if map_id in self.channel_sum else total
        self.channel_count[map_id] = self.channel_count.get(map_id, 0) + value.shape[0]

    def channels(self) -> dict[MapId, torch.Tensor]:
        """{id: (C,)}: each map's weights averaged over every window and flip."""
        return {k: (v / self.channel_count[k]).cpu() for k, v in sorted(self.channel_sum.items())}


class StitchedCase:
    """The sink of a case's sliding windows (`seg.models.predict.Sink`): the label map is the arg-max of the
    probabilities' rows as they land (so a caller that needs no probabilities never holds them whole), the
    probabilities are kept only when asked for, and each spatial map is kept whole on its own grid; gate and
    spatial maps clamped to [0, 1] (blending can overshoot by rounding), self maps as they are."""

    def __init__(self, keep_probabilities: bool = True) -> None:
        self.keep_probabilities = keep_probabilities
        self.probabilities: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None
        self.maps: dict[MapId, torch.Tensor] = {}
        self.finite = True

    def __call__(self, key: str, shape: tuple[int, ...], axis: int, start: int, rows: torch.Tensor) -> None:
        region = tuple(
            slice(start, start + rows.shape[1 + axis]) if a == axis else slice(None) for a in range(len(shape))
        )
        rows = rows.cpu()
        if key != PROBABILITIES:
            map_id = MapId.parse(key)
            if map_id not in self.maps:
                self.maps[map_id] = torch.empty((rows.shape[0], *shape))
            self.maps[map_id][(slice(None), *region)] = rows.clamp(0, 1) if map_id.kind in CLAMPED else rows
            return
        self.finite = self.finite and bool(torch.isfinite(rows).all())
        if self.labels is None:
            self.labels = torch.empty(shape, dtype=torch.uint8)
            if self.keep_probabilities:
                self.probabilities = torch.empty((rows.shape[0], *shape))
        self.labels[region] = rows.argmax(0).to(torch.uint8)
        if self.probabilities is not None:
            self.probabilities[(slice(None), *region)] = rows

    def prediction(self, channels: dict[MapId, torch.Tensor]):
        from seg.infer.predictor import Prediction

        return Prediction(self.probabilities, self.maps, channels, self.labels, self.finite)
