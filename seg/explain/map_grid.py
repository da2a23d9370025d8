"""Attention maps from a network's own grids onto the grid of its input window (`seg.models.maps`): a map of
down-sampling `factor` has ceil(size / factor) cells per axis, cell c covering input voxels [c f, (c + 1) f).
Values (gate coefficients, distances in mm) are interpolated; attention weights over keys are mass, spread evenly
over the voxels of their cell so that a distribution stays one."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from seg.models.layers import interp_mode
from seg.models.maps import MapId, MapRequest

Factored = dict[MapId, tuple[torch.Tensor, tuple[int, ...]]]  # map -> (value, its grid's down-sampling)


def recorded_forward(net: nn.Module, x: torch.Tensor, request: MapRequest) -> tuple[torch.Tensor, Factored]:
    """Logits of one forward pass and the maps `request` asks for, each with its factor (which places it on the
    input grid)."""
    out = net.outputs(x, maps=request, deep_supervision=False)  # logits (B, K, *x grid)
    return out.logits, {m: (v, out.factors[m]) for m, v in out.maps.items()}


def value_on_grid(value: torch.Tensor, factor: Sequence[int], size: Sequence[int]) -> torch.Tensor:
    """(B, 1, *cells) -> (B, 1, *size): linear interpolation between cell centres, cropped like the input."""
    covered = [c * f for c, f in zip(value.shape[2:], factor, strict=True)]
    if list(value.shape[2:]) != covered:
        value = F.interpolate(value.float(), size=covered, mode=interp_mode(len(covered)), align_corners=False)
    return value[(slice(None), slice(None), *(slice(0, s) for s in size))]


def mass_on_grid(weights: torch.Tensor, factor: Sequence[int], size: Sequence[int]) -> torch.Tensor:
    """(B, 1, *cells) weights -> (B, 1, *size): each cell's weight spread evenly over its voxels inside `size`
    (a cell reaching past the input's end shares it among the voxels it has), so the total is kept."""
    crop = (slice(None), slice(None), *(slice(0, s) for s in size))
    out, per_cell = weights.float(), _cell_counts(size, factor)[None, None]  # (1, 1, *cells) voxels per cell
    for axis, f in enumerate(factor):
        out = out.repeat_interleave(f, dim=2 + axis)
        per_cell = per_cell.repeat_interleave(f, dim=2 + axis)
    return out[crop] / per_cell[crop]


def _cell_counts(size: Sequence[int], factor: Sequence[int]) -> torch.Tensor:
    """(*cells): how many voxels of a grid of `size` each cell of `factor` covers."""
    counts = torch.ones(())
    for s, f in zip(size, factor, strict=True):
        axis = torch.tensor([min(f, s - c * f) for c in range(math.ceil(s / f))], dtype=torch.float32)
        counts = counts[..., None] * axis
    return counts
