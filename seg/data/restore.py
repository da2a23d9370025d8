"""Undo preprocessing: preprocessed grid -> the original file's array, for `write_image(..., props.geometry, ...)`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seg.data.errors import DataError
from seg.data.geometry import from_canonical
from seg.data.properties import CaseProperties
from seg.data.resample import resample


def restore_to_original(
    array: np.ndarray,
    props: CaseProperties,
    is_label: bool,
    background: float | Sequence[float] = 0.0,
    cropped: bool = False,
) -> np.ndarray:
    """(K, *preprocessed spatial) -> the original file's voxel order and shape: (*spatial) for K == 1, else
    (*spatial, K) (channels last, as NIfTI and SimpleITK store them).

    Inverts resampling (nearest neighbour for labels, linear otherwise: no overshoot on probabilities), the crop
    (the outside is filled with `background`, per channel if a sequence: e.g. 1 for a background probability) and
    the canonical reorientation (an exact axis permutation). Labels come back as uint8, anything else as float32.
    With the target spacing equal to the original, label maps come back exactly. `cropped`: the array is already
    resampled back to the cropped grid (K, *cropped shape).
    """
    array = np.asarray(array)
    expected = props.cropped_shape if cropped else props.resampled_shape
    if array.ndim != len(expected) + 1 or tuple(array.shape[1:]) != tuple(expected):
        grid = "cropped" if cropped else "preprocessed"
        raise DataError(
            f"case {props.case_id}: array of shape {array.shape} does not match the {grid} "
            f"shape (K, {', '.join(map(str, expected))}). Pass the network output for this case, channels first."
        )
    dtype = np.uint8 if is_label else np.float32
    k = array.shape[0]
    fill = np.broadcast_to(np.asarray(background, dtype=dtype), (k,))
    full = np.empty((k, *props.canonical_shape), dtype=dtype)  # (K, *canonical)
    full[...] = fill.reshape((k,) + (1,) * len(props.canonical_shape))
    window = full[(slice(None), *(slice(a, b) for a, b in props.bbox))]  # the crop, resampled back in place
    resample(array.astype(dtype, copy=False), props.cropped_shape, 0 if is_label else 1, out=window)
    out = from_canonical(full, props.reorientation, channel_first=True)  # (K, *file spatial)
    return out[0] if k == 1 else np.moveaxis(out, 0, -1)
