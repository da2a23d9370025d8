"""Gaussian-weighted sliding windows that hand their stitched output on as it becomes final.

The windows are those of MONAI's `sliding_window_inference` (same starts, same padding of an image smaller than the
window, same Gaussian importance map, same order of sums), so the result is the same to the last bit; but instead of
a full-size output and weight map, each output is summed in a band of rows along the first spatial axis. The
windows run in order of their start along that axis, so once the next window starts at row r, every row before r
is final: it is divided by its weight and given to `emit`, and the band moves on. What a caller keeps of those rows
(a full probability map, only the arg-max, a map on its own grid) is its own choice; see `seg.models.predict`.

An output smaller than the window (an attention map on a coarser grid) is stitched on its own grid: the window's
position scaled, the importance map resampled to it (nearest, exact), as MONAI does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import product

import torch
import torch.nn.functional as F

WindowFn = Callable[[torch.Tensor], torch.Tensor | dict[str, torch.Tensor]]
Emit = Callable[[str, tuple[int, ...], int, torch.Tensor], None]  # key, full shape, first row, rows (B, K, n, ...)
TENSOR = ""  # the key of a window function that returns a tensor


def window_starts(size: Sequence[int], roi: Sequence[int], overlap: float) -> list[tuple[int, ...]]:
    """Window starts over an image of `size` (at least `roi` on every axis), first axis outermost; the step is
    roi * (1 - overlap) (at least 1) and the last window ends at the image's edge."""
    per_axis = []
    for n, r in zip(size, roi, strict=True):
        step = r if r == n else max(int(r * (1 - overlap)), 1)
        count = next(i for i in range(n) if i * step + r >= n) + 1
        per_axis.append([min(i * step, n - r) for i in range(count)])
    return list(product(*per_axis))


def gaussian_weight(roi: Sequence[int], device: torch.device) -> torch.Tensor:
    """MONAI's Gaussian importance map (`compute_importance_map`, sigma = roi / 8, clamped away from 0) computed the
    same way, to the bit, without importing monai.data (seconds on a first case), (*roi) float32."""
    weight = None
    for i, n in enumerate(roi):
        x = torch.arange(start=-(n - 1) / 2.0, end=(n - 1) / 2.0 + 1, dtype=torch.float, device=device)
        x = torch.exp(x**2 / (-2 * (n * 0.125) ** 2))
        weight = x if weight is None else weight.unsqueeze(-1) * x[(None,) * i]
    return torch.clamp_(weight, min=max(torch.min(weight).item(), 1e-3))


class Band:
    """One output's weighted sums and weights for rows [lo, lo + n) of its grid's first axis."""

    def __init__(self, value: torch.Tensor, roi, padded, before, size, weight: torch.Tensor, images: int) -> None:
        window = tuple(value.shape[2:])
        self.roi = tuple(roi)
        self.scale = [w / r for w, r in zip(window, roi, strict=True)]
        self.grid = [int(p * z) for p, z in zip(padded, self.scale, strict=True)]
        self.crop = [  # MONAI's crop of the padding, which the grid's end may cut short
            slice(int(round(b * z)), min(int(round((b + s) * z)), g))
            for b, s, z, g in zip(before, size, self.scale, self.grid, strict=True)
        ]
        self.shape = tuple(c.stop - c.start for c in self.crop)  # the unpadded output on this grid
        w = weight if window == tuple(roi) else F.interpolate(weight[None, None], window, mode="nearest-exact")[0, 0]
        self.weight = w[None, None]
        self.sums = value.new_zeros((images, value.shape[1], 0, *self.grid[1:]), dtype=torch.float32)
        self.weights = value.new_zeros((1, 1, 0, *self.grid[1:]), dtype=torch.float32)
        self.lo = 0

    def add(self, windows: Sequence[tuple[int, tuple[int, ...]]], value: torch.Tensor) -> None:
        for (image, start), v in zip(windows, value, strict=True):
            region = [slice(int(s * z), int((s + r) * z)) for s, r, z in zip(start, self.roi, self.scale, strict=True)]
            self._cover(region[0].stop)
            region[0] = slice(region[0].start - self.lo, region[0].stop - self.lo)
            self.sums[(image, slice(None), *region)] += v * self.weight[0]
            if image == 0:
                self.weights[(slice(None), slice(None), *region)] += self.weight

    def _cover(self, stop: int) -> None:
        missing = stop - self.lo - self.sums.shape[2]
        if missing > 0:
            grow = lambda t: torch.cat([t, t.new_zeros((*t.shape[:2], missing, *t.shape[3:]))], 2)  # noqa: E731
            self.sums, self.weights = grow(self.sums), grow(self.weights)

    def flush(self, next_start: int | None, key: str, emit: Emit) -> None:
        """Emit the rows before the next window's start (image grid; None: the end), cropped to the unpadded
        image, and drop them from the band."""
        done = self.grid[0] if next_start is None else int(next_start * self.scale[0])
        n = min(done - self.lo, self.sums.shape[2])
        if n <= 0:
            return
        rows = self.sums[:, :, :n] / self.weights[:, :, :n]
        first, last = max(self.lo, self.crop[0].start), min(self.lo + n, self.crop[0].stop)
        if last > first:
            kept = rows[(slice(None), slice(None), slice(first - self.lo, last - self.lo), *self.crop[1:])]
            emit(key, self.shape, first - self.crop[0].start, kept)
        self.sums, self.weights = self.sums[:, :, n:].clone(), self.weights[:, :, n:].clone()
        self.lo += n


def stream_windows(
    fn: WindowFn, images: torch.Tensor, roi: Sequence[int], overlap: float, sw_batch_size: int, emit: Emit
) -> None:
    """`fn` over Gaussian-weighted windows of `images` (B, C, *spatial); `emit(key, shape, start, rows)` receives
    each output's final rows (B, K, n, *rest) along the first spatial axis, in order, cropped to `shape`."""
    roi = tuple(int(r) for r in roi)
    size = tuple(images.shape[2:])
    pad = [max(r - s, 0) for r, s in zip(roi, size, strict=True)]
    before = [p // 2 for p in pad]
    if any(pad):
        images = F.pad(images, [x for b, p in zip(reversed(before), reversed(pad), strict=True) for x in (b, p - b)])
    padded = tuple(images.shape[2:])
    windows = [(b, s) for s in window_starts(padded, roi, overlap) for b in range(images.shape[0])]
    weight = gaussian_weight(roi, images.device)
    bands: dict[str, Band] = {}
    step = max(int(sw_batch_size), 1)
    for i in range(0, len(windows), step):
        batch = windows[i : i + step]
        x = torch.cat([images[(slice(b, b + 1), slice(None), *_window(s, roi))] for b, s in batch])
        out = fn(x)
        for key, value in (out if isinstance(out, dict) else {TENSOR: out}).items():
            if key not in bands:
                bands[key] = Band(value, roi, padded, before, size, weight, images.shape[0])
            bands[key].add(batch, value.float())
        following = windows[i + step][1][0] if i + step < len(windows) else None
        for key, band in bands.items():
            band.flush(following, key, emit)


def _window(start: Sequence[int], roi: Sequence[int]) -> tuple[slice, ...]:
    return tuple(slice(s, s + r) for s, r in zip(start, roi, strict=True))
