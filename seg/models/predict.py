"""Whole-volume prediction by Gaussian-weighted sliding windows (MONAI), for 2D and 3D networks, and for 2D
networks applied slice by slice to 3D volumes. One code path: the window function may return a tensor or a
dict of tensors of the window's size (e.g. probabilities and gate maps), all stitched the same way."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

WindowFn = Callable[[torch.Tensor], torch.Tensor | dict[str, torch.Tensor]]


def sliding_window(
    fn: WindowFn,
    image: torch.Tensor,
    roi_size: Sequence[int],
    net_dims: int,
    overlap: float = 0.5,
    sw_batch_size: int = 2,
    slice_axis: int = 2,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """`fn` over windows of `image` (1, C, *spatial), blended with Gaussian weights; outputs (1, K, *spatial).

    A `net_dims`-D function on an image with one more spatial dimension predicts slices along `slice_axis`
    (a spatial axis index), `4 * sw_batch_size` slices per sliding-window call.
    """
    from monai.inferers import sliding_window_inference

    img_dims = image.ndim - 2
    run = lambda x: sliding_window_inference(  # noqa: E731
        x, tuple(roi_size), max(sw_batch_size, 1), fn, overlap=overlap, mode="gaussian"
    )
    if net_dims == img_dims:
        return run(image)
    if net_dims != img_dims - 1:
        raise ValueError(
            f"a {net_dims}D network cannot predict a {img_dims}D image of shape {tuple(image.shape)}: expected a "
            f"{net_dims}D image, or {net_dims + 1}D to predict slice by slice. Use a model trained on {img_dims}D data."
        )
    axis = 2 + slice_axis
    slices = image.movedim(axis, 0).squeeze(1)  # (S, C, *plane)
    parts = [run(chunk) for chunk in slices.split(max(sw_batch_size, 1) * 4)]
    restack = lambda ts: torch.cat(ts, dim=0).unsqueeze(1).movedim(0, axis)  # noqa: E731  (1, K, *spatial)
    if isinstance(parts[0], dict):
        return {k: restack([p[k] for p in parts]) for k in parts[0]}
    return restack(parts)


def sliding_window_logits(
    net: nn.Module,
    image: torch.Tensor,
    roi_size: Sequence[int],
    overlap: float = 0.5,
    sw_batch_size: int = 2,
    slice_axis: int = 2,
) -> torch.Tensor:
    """Logits (1, K, *spatial) for `image` (1, C, *spatial) (validation during training)."""
    net_dims = getattr(net, "spatial_dims", image.ndim - 2)
    return sliding_window(net, image, roi_size, net_dims, overlap, sw_batch_size, slice_axis)
