"""Read one case and check it: every problem is one line naming the file, what is wrong and the fix.

A case with problems is never half-used: `read_case` returns its problems and no arrays, and the stage skips it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seg.data.errors import ImageReadError
from seg.data.geometry import Geometry, Reorientation, canonical_reorientation, grid_mismatch, to_canonical
from seg.data.io import read_image

LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 weights for RGB -> grey


@dataclass(frozen=True)
class Expectations:
    """What every case of a dataset must agree on; None means not known yet (taken from the case)."""

    spatial_dims: int | None = None
    num_channels: int | None = None
    label_values: frozenset[int] | None = None  # declared in dataset.json
    color: str = "grey"
    allow_empty_labels: bool = False
    allow_empty_image: bool = False  # inference: an all-zero scan is read (and gets an all-background label)


@dataclass
class CaseData:
    """A case in canonical orientation: image (C, *spatial) float32, label (1, *spatial) uint8 or None."""

    image: np.ndarray | None = None
    label: np.ndarray | None = None
    geometry: Geometry | None = None
    reorientation: Reorientation | None = None
    problems: list[str] = field(default_factory=list)
    empty: bool = False  # every voxel zero (only read with Expectations.allow_empty_image)


def _color_to_channels(x: np.ndarray, geometry: Geometry, color: str) -> np.ndarray:
    """(*spatial, C) RGB(A) pixels of a 2D image -> (C', *spatial); other images -> (C, *spatial)."""
    d = geometry.spatial_dims
    if x.ndim == d:
        x = x[..., None]
    rgb = d == 2 and x.shape[-1] in (3, 4)  # RGB or RGBA pixels: alpha carries no image content
    if rgb and color == "grey":
        x = (x[..., :3].astype(np.float64) @ LUMA)[..., None]
    elif rgb and color == "first":
        x = x[..., :1]
    elif rgb:
        x = x[..., :3]
    elif color == "rgb" and d == 2 and x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return np.moveaxis(x, -1, 0)


def read_channels(
    paths: Sequence[Path], exp: Expectations, problems: list[str]
) -> tuple[np.ndarray | None, Geometry | None]:
    """Read channel files into (C, *spatial) float32 in file order, appending problems instead of raising."""
    channels, first = [], None
    for path in paths:
        try:
            x, geom = read_image(path)
        except ImageReadError as e:
            problems.append(str(e))
            continue
        if exp.spatial_dims is not None and geom.spatial_dims != exp.spatial_dims:
            problems.append(
                f"{path}: is {geom.spatial_dims}D (shape {geom.shape}) but the dataset is {exp.spatial_dims}D. "
                f"Remove the case or set data.spatial_dims to match."
            )
            continue
        if first is None:
            first = geom
        elif grid_mismatch(path, geom, first):
            problems.append(
                f"{path}: grid (shape {geom.spatial_shape}) differs from channel 0 {paths[0].name} "
                f"(shape {first.spatial_shape}) in shape or affine. Resample all channels onto one grid."
            )
            continue
        channels.append(_color_to_channels(x, geom, exp.color).astype(np.float32))
    if problems or first is None:
        return None, None
    image = channels[0] if len(channels) == 1 else np.concatenate(channels, axis=0)
    if exp.num_channels is not None and image.shape[0] != exp.num_channels:
        problems.append(
            f"{paths[0]}: has {image.shape[0]} channel(s) but the dataset declares {exp.num_channels} "
            f"(dataset.json modality). Supply one file or 4D volume per declared channel."
        )
    bad = int(np.count_nonzero(~np.isfinite(image)))
    if bad:
        problems.append(
            f"{paths[0]}: {bad} NaN/Inf voxel(s). Replace them (e.g. with the background value) and re-export."
        )
    if not problems and not exp.allow_empty_image and not np.any(image):
        problems.append(f"{paths[0]}: image is all zero. Re-export it or remove the case.")
    return (None, None) if problems else (image, first)


def read_label(
    path: Path, image_geometry: Geometry, exp: Expectations, binary_255: bool, problems: list[str]
) -> np.ndarray | None:
    """Read a label map as (1, *spatial) uint8 in file order, or append problems and return None."""
    try:
        y, geom = read_image(path)
    except ImageReadError as e:
        problems.append(str(e))
        return None
    d = image_geometry.spatial_dims
    if geom.spatial_dims != d:
        problems.append(
            f"{path}: label is {geom.spatial_dims}D but its image is {d}D. Export the label on the image grid."
        )
        return None
    if y.ndim == d + 1:  # RGB(A) or single-channel-4D masks: channel 0 holds the labels
        y = y[..., 0]
    mismatch = grid_mismatch(path, geom, image_geometry)
    if mismatch:
        problems.append(mismatch)
        return None
    y = np.asarray(y)
    if not np.all(np.isfinite(y)):
        problems.append(f"{path}: label holds NaN/Inf values. Re-export it with integer class ids.")
        return None
    if not np.array_equal(y, np.round(y)):
        problems.append(
            f"{path}: label holds non-integer values (e.g. {y[y != np.round(y)].flat[0]:.4g}). "
            f"Labels must be class ids; re-export with nearest-neighbour interpolation."
        )
        return None
    values = {int(v) for v in np.unique(y)}
    if binary_255 and values <= {0, 255}:
        y = (y == 255).astype(np.uint8)  # 0/255 masks (PNG convention) mean background/foreground
        values = {int(v) for v in np.unique(y)}
    allowed = exp.label_values
    if allowed is not None and not values <= allowed:
        extra = sorted(values - allowed)
        problems.append(
            f"{path}: label values {extra} are not in dataset.json labels {sorted(allowed)}. "
            f"Fix the label map or declare the classes in dataset.json."
        )
        return None
    if min(values) < 0 or max(values) > 255:
        problems.append(
            f"{path}: label values must be in 0..255, got {min(values)}..{max(values)}. Relabel the classes."
        )
        return None
    if values == {0} and not exp.allow_empty_labels:
        problems.append(
            f"{path}: label has no foreground voxels. Remove the case, annotate it, or set data.allow_empty_labels."
        )
        return None
    return y.astype(np.uint8)[None]


def read_case(
    images: Sequence[Path], label: Path | None, exp: Expectations, binary_255: bool = False, need_label: bool = True
) -> CaseData:
    """Read, validate and reorient one case to canonical orientation."""
    case = CaseData()
    image, geom = read_channels(images, exp, case.problems)
    y = None
    if image is not None and label is not None:
        y = read_label(label, geom, exp, binary_255, case.problems)
    elif image is not None and need_label:
        case.problems.append(f"{images[0]}: has no label file. Add one or remove the case.")
    if case.problems:
        return case
    r = canonical_reorientation(geom.affine_array())
    case.image = to_canonical(image, r, channel_first=True)
    case.label = to_canonical(y, r, channel_first=True) if y is not None else None
    case.geometry, case.reorientation = geom, r
    case.empty = exp.allow_empty_image and not np.any(image)
    return case
