"""Whole-volume prediction by Gaussian-weighted sliding windows (MONAI), for 2D and 3D networks, and for 2D
networks applied slice by slice to 3D volumes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def sliding_window_logits(
    net: nn.Module,
    image: torch.Tensor,
    roi_size: Sequence[int],
    overlap: float = 0.5,
    sw_batch_size: int = 2,
    slice_axis: int = 2,
) -> torch.Tensor:
    """Logits (1, K, *spatial) for `image` (1, C, *spatial).

    A network whose `spatial_dims` is one less than the image's predicts slices along `slice_axis` (a spatial
    axis index) in batches of `sw_batch_size`, each through its own sliding window.
    """
    from monai.inferers import sliding_window_inference

    net_dims = getattr(net, "spatial_dims", image.ndim - 2)
    img_dims = image.ndim - 2
    if net_dims == img_dims:
        return sliding_window_inference(image, tuple(roi_size), sw_batch_size, net, overlap=overlap, mode="gaussian")
    if net_dims != img_dims - 1:
        raise ValueError(f"A {net_dims}D network cannot predict a {img_dims}D image of shape {tuple(image.shape)}.")
    axis = 2 + slice_axis
    slices = image.movedim(axis, 0).squeeze(1)  # (S, C, *plane)
    outs = [
        sliding_window_inference(chunk, tuple(roi_size), chunk.shape[0], net, overlap=overlap, mode="gaussian")
        for chunk in slices.split(max(sw_batch_size, 1) * 4)
    ]
    return torch.cat(outs, dim=0).unsqueeze(1).movedim(0, axis)  # (1, K, *spatial)
