"""The Pixel Correlation Module of SEAM (Wang et al., CVPR 2020), batched and differentiable: refine maps with the
affinities of feature vectors,

    y_i = sum_{j in N(i)} a_ij * cam_j / sum_{j in N(i)} a_ij,   a_ij = ReLU(cos(f_i, f_j)),

where N(i) is every voxel (SEAM; `window=None`: a (V, V) affinity matrix, memory O(voxels^2)) or a local window of
`window` voxels per axis (memory O(voxels * (C + K)) whatever the window: one shifted-slice pass per offset, no
unfold tensor of voxels * window^dims is built). Voxels whose feature vector is zero (no affinity to anything,
itself included) keep their value. One code path for 2D and 3D.
"""

from __future__ import annotations

import itertools

import torch

EPS = 1e-5


def pixel_correlation(cams: torch.Tensor, features: torch.Tensor, window: int | None = None) -> torch.Tensor:
    """cams (B, K, *S) and features (B, C, *S) on the same grid -> refined cams (B, K, *S)."""
    if cams.shape[0] != features.shape[0] or cams.shape[2:] != features.shape[2:]:
        raise ValueError(
            f"pixel_correlation: cams {tuple(cams.shape)} and features {tuple(features.shape)} differ "
            f"in batch or space; pass both on the same grid."
        )
    if window is not None and (window < 1 or window % 2 == 0):
        raise ValueError(f"pixel_correlation: window must be an odd number >= 1 or None (all voxels), got {window}.")
    with torch.autocast(cams.device.type, enabled=False):  # cosines and sums in float32 under mixed precision
        cams, features = cams.float(), features.float()
        f = features / features.norm(dim=1, keepdim=True).clamp_min(EPS)  # unit vectors; zero vectors stay zero
        return _dense(cams, f) if window is None else _windowed(cams, f, window)


def _dense(cams: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    b, k, *shape = cams.shape
    f = f.flatten(2)  # (B, C, V)
    affinity = torch.relu(f.transpose(1, 2) @ f)  # (B, V, V), symmetric
    den = affinity.sum(1, keepdim=True)  # (B, 1, V)
    refined = cams.flatten(2) @ (affinity / den.clamp_min(EPS))  # (B, K, V)
    return torch.where(den > EPS, refined, cams.flatten(2)).view(b, k, *shape)


def _windowed(cams: torch.Tensor, f: torch.Tensor, window: int) -> torch.Tensor:
    shape = tuple(cams.shape[2:])
    num = torch.zeros_like(cams)  # (B, K, *S)
    den = torch.zeros_like(cams[:, :1])  # (B, 1, *S)
    r = window // 2
    for offset in itertools.product(range(-r, r + 1), repeat=len(shape)):
        dst, src = _overlap(shape, offset)
        d, s = (slice(None), slice(None), *dst), (slice(None), slice(None), *src)
        affinity = torch.relu((f[d] * f[s]).sum(1, keepdim=True))  # (B, 1, *overlap)
        num[d] += affinity * cams[s]  # in place: autograd saves neither num nor den, so this is safe
        den[d] += affinity
    return torch.where(den > EPS, num / den.clamp_min(EPS), cams)


def _overlap(shape: tuple[int, ...], offset: tuple[int, ...]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Slices so that dst[i] pairs with src[i + offset] wherever both lie inside `shape`."""
    dst, src = [], []
    for n, o in zip(shape, offset, strict=True):
        dst.append(slice(max(0, -o), max(0, n - max(0, o))))  # empty when |o| >= n
        src.append(slice(max(0, o), max(0, n - max(0, -o))))
    return tuple(dst), tuple(src)
