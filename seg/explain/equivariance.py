"""SEAM's equivariance test on a trained network: for each transform T, d(T^-1 map(T x), map(x)) for the CAMs of
each foreground class (one target layer) and for every gate and spatial attention map; see
`seg.explain.transforms` for T and d."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from seg.explain.engine import CaseMaps, MapEngine
from seg.explain.keys import CAM, MapId
from seg.explain.transforms import SpatialTransform, equivariance_error, unit_max
from seg.models.maps import GATE, SPATIAL

MEASURED_KINDS = (GATE, SPATIAL)  # maps in [0, 1], compared as they are


def equivariance(
    engine: MapEngine,
    image: np.ndarray | torch.Tensor,
    base: CaseMaps,
    transforms: Sequence[SpatialTransform],
    layer: str,
    class_names: Sequence[str],
) -> dict[str, dict[str, float]]:
    """{MapId (a class's CAM, a gate or spatial map): {transform name: error}}; `base` = engine.maps(image),
    `class_names` the foreground classes in the order of base.cams[layer]."""
    x = torch.as_tensor(image, dtype=torch.float32)  # (C, *S)
    errors: dict[str, dict[str, float]] = {}
    for t in transforms:
        moved = engine.maps(t.forward(x))
        back = t.inverse(moved.cams[layer])  # (K - 1, *S)
        for i, name in enumerate(class_names):
            errors.setdefault(MapId(CAM, name), {})[t.name] = equivariance_error(
                unit_max(back[i]), unit_max(base.cams[layer][i])
            )
        for map_id, value in moved.spatial.items():
            if map_id.kind in MEASURED_KINDS and map_id in base.spatial:
                back_map = t.inverse(value[None])[0]  # (*S)
                error = equivariance_error(back_map, base.spatial[map_id])
                errors.setdefault(MapId.of(map_id), {})[t.name] = error
    return errors


def by_family(errors: dict[str, float], transforms: Sequence[SpatialTransform]) -> dict[str, float]:
    """Mean error per transform family (flip, rot90, scale) from {transform name: error}, NaNs left out."""
    family = {t.name: t.family for t in transforms}
    groups: dict[str, list[float]] = {}
    for name, value in errors.items():
        if np.isfinite(value):  # NaN: both maps zero, nothing to compare
            groups.setdefault(family[name], []).append(value)
    return {f: float(np.mean(v)) for f, v in groups.items()}
