"""The Pixel Correlation Module of SEAM (Wang et al., CVPR 2020): refine a CAM with the affinities of the
network's own features,

    y_i = sum_{j in N(i)} a_ij * cam_j / sum_{j in N(i)} a_ij,   a_ij = ReLU(cos(f_i, f_j)),

over a local window N(i) of `window` voxels per axis (SEAM uses the whole image; a window keeps 3D in memory).
Implemented by shifted-slice accumulation: one pass per offset, each touching every voxel once, so memory stays
O(voxels * (C + K)) whatever the window, and no unfold tensor of voxels * window^dims is ever built.
"""

from __future__ import annotations

import itertools

import torch

EPS = 1e-8


def pixel_correlation(cams: torch.Tensor, features: torch.Tensor, window: int = 5) -> torch.Tensor:
    """cams (K, *S) and features (C, *S) on the same grid -> refined cams (K, *S).

    Voxels whose feature vector is zero (no affinity to anything, itself included) keep their CAM value.
    """
    if cams.shape[1:] != features.shape[1:]:
        raise ValueError(
            f"pixel_correlation: cams {tuple(cams.shape)} and features {tuple(features.shape)} differ in space."
        )
    if window < 1 or window % 2 == 0:
        raise ValueError(f"pixel_correlation: window must be an odd number >= 1, got {window}.")
    cams, f = cams.float(), features.float()
    f = f / f.norm(dim=0, keepdim=True).clamp_min(EPS)  # unit feature vectors (zero vectors stay zero)
    shape = tuple(cams.shape[1:])
    num = torch.zeros_like(cams)  # (K, *S)
    den = torch.zeros(shape, dtype=cams.dtype)  # (*S)
    r = window // 2
    for offset in itertools.product(range(-r, r + 1), repeat=len(shape)):
        dst, src = _overlap(shape, offset)
        affinity = (f[(slice(None), *dst)] * f[(slice(None), *src)]).sum(0).clamp_min_(0)  # ReLU(cos), (*overlap)
        num[(slice(None), *dst)] += affinity * cams[(slice(None), *src)]
        den[dst] += affinity
    return torch.where(den > EPS, num / den.clamp_min(EPS), cams)


def _overlap(shape: tuple[int, ...], offset: tuple[int, ...]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Slices so that dst[i] pairs with src[i + offset] wherever both lie inside `shape`."""
    dst, src = [], []
    for n, o in zip(shape, offset):
        dst.append(slice(max(0, -o), max(0, n - max(0, o))))  # empty when |o| >= n
        src.append(slice(max(0, o), max(0, n - max(0, -o))))
    return tuple(dst), tuple(src)
