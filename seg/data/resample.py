"""Resampling on a voxel grid, the same code for 2D and 3D.

Grid convention: voxels are cells (scipy `grid_mode=True`, torch `align_corners=False`): the first and last cell
edges of input and output coincide, so resampling and resampling back keep the object where it was.
Images use spline interpolation (order 3 by default: sharper than linear, about 3x slower, may overshoot a little);
labels use nearest neighbour so they stay integer class ids.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def target_shape(shape: Sequence[int], spacing: Sequence[float], target_spacing: Sequence[float]) -> tuple[int, ...]:
    """Shape covering the same extent at `target_spacing` (at least one voxel per axis)."""
    return tuple(max(1, int(round(n * s / t))) for n, s, t in zip(shape, spacing, target_spacing, strict=True))


def resample(array: np.ndarray, shape: Sequence[int], order: int, out: np.ndarray | None = None) -> np.ndarray:
    """Resample every channel of a (C, *spatial) array to (C, *shape); order 0 is nearest neighbour. `out`: where
    to write it (e.g. a window of a larger array), instead of a new array."""
    from scipy import ndimage

    shape = tuple(int(s) for s in shape)
    if array.shape[1:] == shape:
        if out is None:
            return array
        out[...] = array
        return out
    factors = [o / i for o, i in zip(shape, array.shape[1:], strict=True)]
    if out is None:
        out = np.empty((array.shape[0], *shape), dtype=array.dtype)
    for c in range(array.shape[0]):
        # grid_mode needs a 'grid-' or 'nearest' boundary; 'nearest' avoids darkening the border as zero padding would
        ndimage.zoom(array[c], factors, out[c], order=order, mode="nearest", grid_mode=True, prefilter=order > 1)
    return out


def resampled_affine(affine: np.ndarray, in_shape: Sequence[int], out_shape: Sequence[int]) -> np.ndarray:
    """Voxel-to-world affine of the resampled grid (cell-aligned, as `resample` does)."""
    d = len(in_shape)
    scale = np.array([i / o for i, o in zip(in_shape, out_shape, strict=True)])
    step = np.eye(d + 1)
    step[:d, :d] = np.diag(scale)
    step[:d, d] = 0.5 * scale - 0.5  # centre of output cell 0 in input voxel coordinates
    return affine @ step
