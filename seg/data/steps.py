"""The preprocessing steps applied to one canonical case: crop to non-zero, normalise, resample.

The same function serves training cases (with a label) and new images at inference (without), so both see
exactly the same arrays; it records every step in `CaseProperties` for `restore_to_original`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seg.data.cache import PreprocessingPlan
from seg.data.geometry import Geometry, Reorientation, canonical_affine, spacing_from_affine
from seg.data.normalize import normalize_channel
from seg.data.properties import CaseProperties
from seg.data.resample import resample, resampled_affine, target_shape


def nonzero_bbox(mask: np.ndarray) -> tuple[tuple[int, int], ...]:
    """[start, stop) per axis of the True region of a boolean array; the full extent when nothing is True."""
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        box.append((int(hit[0]), int(hit[-1]) + 1) if hit.size else (0, mask.shape[axis]))
    return tuple(box)


def apply_steps(
    image: np.ndarray,
    label: np.ndarray | None,
    geometry: Geometry,
    reorientation: Reorientation,
    plan: PreprocessingPlan,
    case_id: str,
    image_files: Sequence[str],
    label_file: str | None = None,
) -> tuple[np.ndarray, np.ndarray | None, CaseProperties]:
    """Canonical image (C, *spatial) [+ label (1, *spatial)] -> preprocessed arrays and their properties."""
    spatial = tuple(image.shape[1:])
    affine = canonical_affine(geometry.affine_array(), reorientation, geometry.spatial_shape)
    spacing = spacing_from_affine(affine)
    if plan.crop_nonzero:
        mask = np.any(image != 0, axis=0)
        if label is not None:
            mask |= label[0] > 0  # never crop away annotated voxels
        bbox = nonzero_bbox(mask)
    else:
        bbox = tuple((0, n) for n in spatial)
    window = (slice(None), *(slice(a, b) for a, b in bbox))
    image, label = image[window], (label[window] if label is not None else None)
    cropped = tuple(image.shape[1:])
    crop_affine = affine.copy()
    crop_affine[:-1, -1] += affine[:-1, :-1] @ np.array([a for a, _ in bbox], dtype=np.float64)

    channels, used = [], []
    for c, params in enumerate(plan.normalization):
        x, p = normalize_channel(image[c], params)
        channels.append(x)
        used.append(p)
    image = channels[0][None] if len(channels) == 1 else np.stack(channels)  # (C, *cropped) float32; the input goes
    del channels

    target = plan.target_spacing
    shape = target_shape(cropped, spacing, target)
    image = resample(image, shape, plan.image_order).astype(np.float32, copy=False)
    if label is not None:
        label = resample(label, shape, 0)
    props = CaseProperties(
        case_id=case_id,
        image_files=tuple(str(f) for f in image_files),
        label_file=str(label_file) if label_file is not None else None,
        geometry=geometry,
        reorientation=reorientation,
        canonical_shape=spatial,
        original_spacing=tuple(spacing),
        bbox=bbox,
        cropped_shape=cropped,
        target_spacing=target,
        resampled_shape=shape,
        preprocessed_affine=tuple(
            tuple(float(v) for v in row) for row in resampled_affine(crop_affine, cropped, shape)
        ),
        normalization=tuple(used),
    )
    return image, label, props
