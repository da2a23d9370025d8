"""Spatial transforms T with inverses, for SEAM's equivariance test (Wang et al., CVPR 2020), and its error.

Every transform acts on channel-first arrays (N, *S) over the last len(S) axes, 2D and 3D alike:
- flip along each spatial axis: its own inverse, exact;
- rot90 in each plane (a, b): inverse rot90 by -1, exact; a non-square plane swaps its two sizes, and the
  inverse swaps them back (2D networks on 3D volumes skip planes containing the slice axis);
- rescale by s (linear interpolation to round(S * s)): the inverse resamples back to S, exact only up to
  interpolation (the round trip of a smooth map is close to identity, of voxel-sharp maps it is not).

Equivariance error of a map f under T: d(T^-1 f(T x), f(x)) with
    d(a, b) = ||a - b||_1 / (||a||_1 + ||b||_1)   in [0, 1]
0 for identical maps, 1 for maps with disjoint support; invariant to a common scale factor; undefined (NaN) when
both maps are zero, so an all-zero CAM never passes for a perfectly equivariant one.
CAMs are divided by their maximum before comparison (their absolute scale is arbitrary); gate maps are
compared as they are (coefficients in [0, 1]).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

FAMILIES = ("flip", "rot90", "scale")
Fn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SpatialTransform:
    name: str  # e.g. flip0, rot90_01, scale0.5
    family: str  # flip, rot90 or scale
    forward: Fn  # (N, *S) -> (N, *S')
    inverse: Fn  # (N, *S') -> (N, *S)


def _flip(axis: int) -> Fn:
    return lambda t: t.flip(1 + axis)  # (N, *S): spatial axis a is tensor dim 1 + a


def _rot(a: int, b: int, k: int) -> Fn:
    return lambda t: torch.rot90(t, k, (1 + a, 1 + b))


def resize(t: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(N, *S) -> (N, *size) by linear interpolation (align_corners=False: voxel centres scale about the grid)."""
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(size)]
    return F.interpolate(t[None].float(), size=tuple(size), mode=mode, align_corners=False)[0]


def spatial_transforms(
    shape: Sequence[int],
    families: Sequence[str] = FAMILIES,
    scales: Sequence[float] = (0.5, 1.5),
    skip_axis: int | None = None,
) -> list[SpatialTransform]:
    """Transforms for arrays of spatial `shape`; `skip_axis`: a slice axis no rot90 plane may contain."""
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"analyze.transforms: unknown {unknown}; expected a subset of {list(FAMILIES)}.")
    dims = len(shape)
    out: list[SpatialTransform] = []
    if "flip" in families:
        out += [SpatialTransform(f"flip{a}", "flip", _flip(a), _flip(a)) for a in range(dims)]
    if "rot90" in families:
        for a, b in itertools.combinations(range(dims), 2):
            if skip_axis not in (a, b):
                out.append(SpatialTransform(f"rot90_{a}{b}", "rot90", _rot(a, b, 1), _rot(a, b, -1)))
    if "scale" in families:
        for s in scales:
            size = tuple(max(1, round(n * s)) for n in shape)
            out.append(SpatialTransform(f"scale{s:g}", "scale", _resizer(size), _resizer(tuple(shape))))
    return out


def _resizer(size: tuple[int, ...]) -> Fn:
    return lambda t: resize(t, size)


def equivariance_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b||_1 / (||a||_1 + ||b||_1) for same-shape maps; NaN when both are zero."""
    if a.shape != b.shape:
        raise ValueError(f"equivariance_error: maps of shapes {tuple(a.shape)} and {tuple(b.shape)} differ.")
    a, b = a.double(), b.double()
    total = a.abs().sum() + b.abs().sum()
    return float((a - b).abs().sum() / total) if total > 0 else float("nan")


def unit_max(t: torch.Tensor) -> torch.Tensor:
    """Divide a non-negative map by its maximum (zero maps stay zero)."""
    m = t.max()
    return t / m if m > 0 else t
