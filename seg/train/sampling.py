"""Patch sampling with foreground oversampling (nnU-Net style): a share of patches is centred on a random
foreground voxel, the rest anywhere; volumes smaller than the patch are zero-padded."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seg.data.cache import CachedCase


def crop_patch(array: np.ndarray, start: Sequence[int], size: Sequence[int], fill: float = 0.0) -> np.ndarray:
    """array (C, *spatial)[start : start + size] per spatial axis, padded with `fill` where it leaves the array."""
    out = np.full((array.shape[0], *size), fill, dtype=array.dtype)
    src, dst = [slice(None)], [slice(None)]
    for st, sz, dim in zip(start, size, array.shape[1:], strict=True):
        lo, hi = max(st, 0), min(st + sz, dim)
        src.append(slice(lo, max(hi, lo)))
        dst.append(slice(lo - st, lo - st + max(hi - lo, 0)))
    out[tuple(dst)] = array[tuple(src)]
    return out


def sample_start(case: CachedCase, patch: Sequence[int], rng: np.random.Generator, foreground: bool) -> list[int]:
    """Top-left corner of a patch: around a foreground voxel (with jitter), or uniformly over the volume.

    Either way the patch stays within the volume on every axis where the volume is at least as large, and only
    pads where it is smaller (as nnU-Net's sampler does): a foreground-centred patch is shifted inwards, which
    keeps the voxel inside it, rather than hanging over the edge into zero padding that whole-volume sliding
    windows never show the network.
    """
    shape = case.image.shape[1:]
    bounds = [
        (min(0, d - p), max(0, d - p)) for d, p in zip(shape, patch, strict=True)
    ]  # a smaller volume: random padding
    if foreground and len(case.foreground):
        centre = case.foreground[rng.integers(len(case.foreground))]
        starts = [
            int(c) - p // 2 + int(rng.integers(-(p // 4), p // 4 + 1)) for c, p in zip(centre, patch, strict=True)
        ]
        return [min(max(s, lo), hi) for s, (lo, hi) in zip(starts, bounds, strict=True)]
    return [int(rng.integers(lo, hi + 1)) for lo, hi in bounds]


def sample_patch(
    case: CachedCase,
    patch: Sequence[int],
    rng: np.random.Generator,
    foreground_fraction: float,
    slice_axis: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(image (C, *patch), label (1, *patch)); with `slice_axis`, a 2D patch from one slice of a 3D case."""
    fg = rng.random() < foreground_fraction
    if slice_axis is None:
        start = sample_start(case, patch, rng, fg)
        return crop_patch(case.image, start, patch), crop_patch(case.label, start, patch)
    # 2D patch from a 3D volume: a 3D "patch" of thickness 1 along slice_axis, then squeezed.
    patch3 = list(patch)
    patch3.insert(slice_axis, 1)
    start = sample_start(case, patch3, rng, fg)
    start[slice_axis] = min(max(start[slice_axis], 0), case.image.shape[1 + slice_axis] - 1)
    image = crop_patch(case.image, start, patch3).squeeze(1 + slice_axis)
    label = crop_patch(case.label, start, patch3).squeeze(1 + slice_axis)
    return image, label
