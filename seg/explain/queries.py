"""What each self-attention head looks at from chosen points: the centroid of each predicted foreground class and
the voxels the user names (`analyze.query_points`, voxel indices of the input image). Per point, one forward pass
over a window of the model's patch size centred on it (the whole case when it fits one window; the point's slice
for a 2D network on volumes) records each head's attention over keys, and the rollout where blocks stack; each map
is placed on the case grid as a distribution over its voxels (sum 1).

Query numbers are the same in every case: class k's centroid is query k - 1, the user's i-th point query K - 1 + i
(K classes with background), so `self_enc3b0_h1_q0` is always the first foreground class."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from seg.data.properties import CaseProperties
from seg.errors import UserError
from seg.explain.map_grid import mass_on_grid, recorded_forward
from seg.models.maps import SELF, MapId, MapRequest

Point = tuple[int, ...]


class QueryPointError(UserError, ValueError):
    """A query point that names no voxel of the image it is given for."""


def centroids(labels: torch.Tensor, num_classes: int) -> dict[int, Point]:
    """{query number: the rounded centroid of the voxels predicted as class k} for the classes predicted."""
    out = {}
    for k in range(1, num_classes):
        voxels = torch.nonzero(labels == k)
        if len(voxels):
            out[k - 1] = tuple(int(v) for v in voxels.float().mean(0).round())
    return out


def point_on_grid(point: Sequence[int], props: CaseProperties) -> Point:
    """A voxel index of the original image -> the voxel of the preprocessed grid that holds it (reoriented,
    cropped, resampled as `seg.data.preprocess` did). A point outside the image or the crop is a one-line error."""
    shape = props.geometry.spatial_shape
    where = f"analyze.query_points: {list(point)} for {props.image_files[0]}"
    if len(point) != len(shape) or any(not 0 <= p < n for p, n in zip(point, shape, strict=False)):
        raise QueryPointError(f"{where} lies outside the image of shape {list(shape)}; give voxel indices 0..n-1.")
    r = props.reorientation
    canonical = [int(point[p]) for p in r.perm]
    for axis in r.flips:
        canonical[axis] = props.canonical_shape[axis] - 1 - canonical[axis]
    cropped = [c - lo for c, (lo, _) in zip(canonical, props.bbox, strict=True)]
    if any(not 0 <= c < n for c, n in zip(cropped, props.cropped_shape, strict=True)):
        raise QueryPointError(
            f"{where} lies outside the non-zero region the model sees (crop {[list(b) for b in props.bbox]} in "
            f"canonical axes); pick a voxel inside the body."
        )
    scale = [o / i for o, i in zip(props.resampled_shape, props.cropped_shape, strict=True)]
    return tuple(
        int(np.clip(np.floor((c + 0.5) * s), 0, n - 1))
        for c, s, n in zip(cropped, scale, props.resampled_shape, strict=True)
    )


def window_around(point: Sequence[int], shape: Sequence[int], roi: Sequence[int]) -> tuple[slice, ...]:
    """The window of `roi` (the image where smaller) centred on `point`, moved inside the image."""
    out = []
    for p, n, w in zip(point, shape, roi, strict=True):
        w = min(w, n)
        start = int(np.clip(p - w // 2, 0, n - w))
        out.append(slice(start, start + w))
    return tuple(out)


def query_maps(
    net: torch.nn.Module,
    image: torch.Tensor,
    points: dict[int, Point],
    roi: Sequence[int],
    spacing: Sequence[float],
    slice_axis: int | None,
) -> dict[MapId, torch.Tensor]:
    """{self map of query j (per head, and rollouts): (*S) on the case grid, summing to 1} for `image` (C, *S).
    `slice_axis`: the image axis a 2D network slices along (None when the network has the image's dimensions)."""
    out: dict[MapId, torch.Tensor] = {}
    for j, point in points.items():
        plane, in_plane = image, tuple(point)
        if slice_axis is not None:  # a 2D network on a volume: the slice through the point
            plane = image.select(1 + slice_axis, point[slice_axis])
            in_plane = point[:slice_axis] + point[slice_axis + 1 :]
        box = window_around(in_plane, plane.shape[1:], roi)
        local = tuple(p - b.start for p, b in zip(in_plane, box, strict=True))
        request = MapRequest(kinds=(SELF,), spacing=tuple(spacing), queries=(local,))
        with torch.no_grad():
            _, maps = recorded_forward(net, plane[(slice(None), *box)][None], request)
        for map_id, (weights, factor) in maps.items():
            if map_id.query is None:
                continue
            on_window = mass_on_grid(weights, factor, [b.stop - b.start for b in box])[0, 0]
            placed = torch.zeros(plane.shape[1:])
            placed[box] = on_window / on_window.sum().clamp_min(1e-12)  # keys inside the case only
            if slice_axis is not None:
                placed = torch.zeros(image.shape[1:]).index_copy_(
                    slice_axis, torch.tensor([point[slice_axis]]), placed.unsqueeze(slice_axis)
                )
            out[MapId(SELF, map_id.site, map_id.head, j)] = placed
    return out
