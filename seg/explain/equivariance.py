"""SEAM's equivariance test on a trained network: for each transform T, d(T^-1 map(T x), map(x)) for the CAMs of
each foreground class (one target layer) and for every gate map; see `seg.explain.transforms` for T and d."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from seg.explain.engine import CaseMaps, MapEngine
from seg.explain.keys import CAM, GATE, MapId
from seg.explain.transforms import SpatialTransform, equivariance_error, unit_max


def equivariance(
    engine: MapEngine,
    image: np.ndarray | torch.Tensor,
    base: CaseMaps,
    transforms: Sequence[SpatialTransform],
    layer: str,
    class_names: Sequence[str],
) -> dict[str, dict[str, float]]:
    """{MapId (a class's CAM or a gate level): {transform name: error}}; `base` = engine.maps(image), `class_names` the
    foreground classes in the order of base.cams[layer]."""
    x = torch.as_tensor(image, dtype=torch.float32)  # (C, *S)
    errors: dict[str, dict[str, float]] = {}
    for t in transforms:
        moved = engine.maps(t.forward(x))
        back = t.inverse(moved.cams[layer])  # (K - 1, *S)
        for i, name in enumerate(class_names):
            errors.setdefault(MapId(CAM, name), {})[t.name] = equivariance_error(
                unit_max(back[i]), unit_max(base.cams[layer][i])
            )
        for level, gate in moved.gates.items():
            back_gate = t.inverse(gate[None])[0]  # (*S)
            errors.setdefault(MapId(GATE, level), {})[t.name] = equivariance_error(back_gate, base.gates[level])
    return errors


def by_family(errors: dict[str, float], transforms: Sequence[SpatialTransform]) -> dict[str, float]:
    """Mean error per transform family (flip, rot90, scale) from {transform name: error}, NaNs left out."""
    family = {t.name: t.family for t in transforms}
    groups: dict[str, list[float]] = {}
    for name, value in errors.items():
        if np.isfinite(value):  # NaN: both maps zero, nothing to compare
            groups.setdefault(family[name], []).append(value)
    return {f: float(np.mean(v)) for f, v in groups.items()}
