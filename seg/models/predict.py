"""Whole-volume prediction by Gaussian sliding windows (`seg.models.stitch`), for 2D and 3D networks, and for 2D
networks applied slice by slice to 3D volumes. One code path: the window function may return a tensor or a dict of
tensors of the window's size (e.g. probabilities and gate maps), all stitched the same way.

By default the stitched outputs come back whole, (1, K, *spatial). With a `sink`, nothing is kept here: the sink
receives each output's final rows as they land (`Sink`), and keeps what it needs (an arg-max, a map on its grid)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from torch import nn

from seg.models.stitch import TENSOR, WindowFn, stream_windows


class Sink(Protocol):
    def __call__(self, key: str, shape: tuple[int, ...], axis: int, start: int, rows: torch.Tensor) -> None:
        """`rows` (K, *shape with `axis` cut to [start, start + n)): final values of output `key`, whose whole
        grid is `shape`."""


class Collect:
    """Keeps every output whole: {key: (B, K, *shape)} along the axis the rows arrive on."""

    def __init__(self, axis: int = 0, batch: bool = True) -> None:
        self.axis, self.batch, self.out = axis, batch, {}

    def __call__(self, key: str, shape: tuple[int, ...], start: int, rows: torch.Tensor) -> None:
        if key not in self.out:
            self.out[key] = rows.new_empty((*rows.shape[:2], *shape))
        n = rows.shape[2 + self.axis]
        region = [slice(None)] * (2 + len(shape))
        region[2 + self.axis] = slice(start, start + n)
        self.out[key][tuple(region)] = rows

    def result(self) -> torch.Tensor | dict[str, torch.Tensor]:
        return self.out[TENSOR] if set(self.out) == {TENSOR} else self.out


def sliding_window(
    fn: WindowFn,
    image: torch.Tensor,
    roi_size: Sequence[int],
    net_dims: int,
    overlap: float = 0.5,
    sw_batch_size: int = 2,
    slice_axis: int = 2,
    sink: Sink | None = None,
) -> torch.Tensor | dict[str, torch.Tensor] | None:
    """`fn` over windows of `image` (1, C, *spatial), blended with Gaussian weights: outputs (1, K, *spatial), or
    None when a `sink` takes the rows as they land.

    A `net_dims`-D function on an image with one more spatial dimension predicts slices along `slice_axis`
    (a spatial axis index), `4 * sw_batch_size` slices at a time, each batch's rows final along that axis.
    """
    img_dims = image.ndim - 2
    if net_dims == img_dims:
        collect = Collect() if sink is None else None
        emit = collect if sink is None else lambda key, shape, start, rows: sink(key, shape, 0, start, rows[0])
        stream_windows(fn, image, roi_size, overlap, sw_batch_size, emit)
        return collect.result() if collect is not None else None
    if net_dims != img_dims - 1:
        raise ValueError(
            f"a {net_dims}D network cannot predict a {img_dims}D image of shape {tuple(image.shape)}: expected a "
            f"{net_dims}D image, or {net_dims + 1}D to predict slice by slice. Use a model trained on {img_dims}D data."
        )
    slices = image.movedim(2 + slice_axis, 0).squeeze(1)  # (S, C, *plane)
    collect = Collect(axis=slice_axis) if sink is None else None
    start = 0
    for chunk in slices.split(max(sw_batch_size, 1) * 4):
        part = Collect()
        stream_windows(fn, chunk, roi_size, overlap, sw_batch_size, part)
        for key, value in part.out.items():  # (n, K, *plane grid) -> (K, *grid with n slices at the slice axis)
            rows = value.movedim(0, 1 + slice_axis)
            shape = list(rows.shape[1:])
            shape[slice_axis] = slices.shape[0]
            if collect is not None:
                collect(key, tuple(shape), start, rows[None])
            else:
                sink(key, tuple(shape), slice_axis, start, rows)
        start += chunk.shape[0]
    return collect.result() if collect is not None else None


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
