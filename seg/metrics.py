"""Agreement of a prediction with a reference, the one place seg computes it: Dice, HD95, normalised surface Dice,
and Dice over a grid of thresholds counted in one pass.

Conventions (nnU-Net v2's `compute_metrics` for Dice, MONAI's for the distances); NaN means undefined:
- Dice = 2TP / (2TP + FP + FN); NaN when the class is in neither mask, 0 when it is in only one. A mean over
  cases leaves NaN out (`nanmean`), so a case without the class neither raises nor lowers the class's Dice.
- HD95 (mm): NaN when either mask is empty. Surface Dice: NaN when both are empty, 0 when one is.
- Thresholded scores: a voxel is predicted where its score is above the threshold (`inclusive`: at it too).
Masks are numpy arrays or torch tensors of any spatial size; distances use the voxel spacing in mm.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def dice_from_counts(tp: Any, fp: Any, fn: Any) -> Any:
    """2TP / (2TP + FP + FN) of numbers, numpy arrays or tensors (elementwise); NaN where all three are 0."""
    if isinstance(tp, torch.Tensor):
        total = (2 * tp + fp + fn).double()
        return torch.where(total > 0, 2 * tp.double() / total.clamp_min(1), torch.full_like(total, math.nan))
    tp, total = np.asarray(tp, np.float64), np.asarray(2 * np.asarray(tp) + fp + fn, np.float64)
    out = np.divide(2 * tp, total, out=np.full_like(total, np.nan), where=total > 0)
    return float(out) if out.ndim == 0 else out


def counts(pred: Any, ref: Any) -> tuple[int, int, int]:
    """(TP, FP, FN) of two boolean masks."""
    p, r = np.asarray(pred, dtype=bool), np.asarray(ref, dtype=bool)
    tp = int(np.logical_and(p, r).sum())
    return tp, int(p.sum()) - tp, int(r.sum()) - tp


def dice(pred: Any, ref: Any) -> float:
    """Dice of two boolean masks: NaN when both are empty, 0 when one is."""
    return dice_from_counts(*counts(pred, ref))


def dice_per_class(pred: torch.Tensor, ref: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(num_classes - 1,) float32 Dice of each foreground class of two label maps of class ids (any shape, same
    device), from one confusion count; NaN for a class in neither map."""
    k = num_classes
    confusion = torch.bincount((pred.long() * k + ref.long()).flatten(), minlength=k * k).view(k, k)
    tp = confusion.diagonal()
    fp, fn = confusion.sum(1) - tp, confusion.sum(0) - tp  # rows: predicted class, columns: reference class
    return dice_from_counts(tp, fp, fn)[1:].float()


def nanmean(values: Sequence[float] | np.ndarray) -> float:
    """The mean of the defined values (NaN and None left out); NaN when none is defined."""
    kept = [float(v) for v in np.asarray(values, dtype=object).ravel() if v is not None and not math.isnan(v)]
    return float(np.mean(kept)) if kept else math.nan


def hd95(pred: Any, ref: Any, spacing: Sequence[float]) -> float:
    """MONAI's 95th-percentile Hausdorff distance in mm (the larger of the two directed 95th percentiles of
    edge-voxel distances); NaN when either mask is empty."""
    from monai.metrics import compute_hausdorff_distance

    p, r = np.asarray(pred, dtype=bool), np.asarray(ref, dtype=bool)
    if not p.any() or not r.any():
        return math.nan
    as_batch = lambda m: torch.from_numpy(m)[None, None]  # noqa: E731
    with warnings.catch_warnings():  # MONAI's own call of a deprecated argument of get_mask_edges
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy", category=FutureWarning)
        value = float(compute_hausdorff_distance(as_batch(p), as_batch(r), percentile=95, spacing=list(spacing))[0, 0])
    return value if math.isfinite(value) else math.nan


def surface_dice(pred: Any, ref: Any, spacing: Sequence[float], tolerance: float) -> float:
    """Normalised surface Dice (Nikolov et al. 2021) as MONAI's `compute_surface_dice` defines it (edge voxels,
    `use_subvoxels=False`): the share of both surfaces' voxels that lie within `tolerance` mm of the other surface.
    A surface voxel is a mask voxel with a face neighbour outside the mask or outside the array. NaN when both
    masks are empty, 0 when only one is."""
    from scipy import ndimage

    if not math.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"surface Dice tolerance must be a finite number of mm >= 0, got {tolerance}")
    p, r = np.asarray(pred, dtype=bool), np.asarray(ref, dtype=bool)
    if not p.any() and not r.any():
        return math.nan
    if not p.any() or not r.any():
        return 0.0
    either = np.argwhere(p | r)  # crop to both masks and a margin of one voxel: the same edges, less work
    box = tuple(slice(max(lo - 1, 0), hi + 2) for lo, hi in zip(either.min(0), either.max(0), strict=True))
    p, r = p[box], r[box]
    edge_p = p & ~ndimage.binary_erosion(p, border_value=0)
    edge_r = r & ~ndimage.binary_erosion(r, border_value=0)
    sampling = [float(s) for s in spacing]
    to_r = ndimage.distance_transform_edt(~edge_r, sampling=sampling)[edge_p]  # each pred edge voxel -> ref edge
    to_p = ndimage.distance_transform_edt(~edge_p, sampling=sampling)[edge_r]
    return float((np.sum(to_r <= tolerance) + np.sum(to_p <= tolerance)) / (to_r.size + to_p.size))


def class_metrics(pred: Any, ref: Any, spacing: Sequence[float], tolerance: float | None = None) -> dict:
    """{tp, fp, fn, dice, hd95, volume_pred, volume_ref[, surface_dice]} of one class's boolean masks; volumes in
    mm^3 (pixel area for 2D). With a `tolerance` (mm), also `surface_dice`."""
    p, r = np.asarray(pred, dtype=bool), np.asarray(ref, dtype=bool)
    tp, fp, fn = counts(p, r)
    voxel = float(np.prod(spacing))
    out = {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "dice": dice_from_counts(tp, fp, fn),
        "hd95": hd95(p, r, spacing),
        "volume_pred": (tp + fp) * voxel,
        "volume_ref": (tp + fn) * voxel,
    }
    if tolerance is not None:
        out["surface_dice"] = surface_dice(p, r, spacing, tolerance)
    return out


def threshold_sweep(
    scores: torch.Tensor, ref: torch.Tensor, thresholds: Sequence[float], inclusive: bool = False
) -> torch.Tensor:
    """scores (C, *S), ref (C, *S) boolean -> (len(thresholds), C) float64 Dice of {scores > t} (`inclusive`:
    {scores >= t}) against `ref`, for every threshold t (in any order) and channel c; NaN where both are empty.

    Counted in one pass over the voxels, not one per threshold: each voxel falls into the bucket of the thresholds
    below its score (a sorted search), and a threshold's predicted voxels are the buckets above it, so one histogram
    of all voxels and one of the reference's give every threshold's counts. Scores compare in the scores' float
    precision (float32 unless float64); a voxel no threshold can select (another class wins it) scores -inf."""
    channels = scores.shape[0]
    dtype = torch.float64 if scores.dtype == torch.float64 else torch.float32
    t, order = torch.sort(torch.tensor([float(v) for v in thresholds], dtype=dtype, device=scores.device))
    n = len(t)
    bucket = torch.searchsorted(t, scores.to(dtype).reshape(channels, -1).contiguous(), right=inclusive)
    bucket = bucket + torch.arange(channels, device=scores.device)[:, None] * (n + 1)  # one histogram per channel
    truth = ref.reshape(channels, -1).bool()

    def above(where: torch.Tensor | None) -> torch.Tensor:  # (C, n): per threshold, voxels whose score passes it
        hist = torch.bincount(bucket.flatten() if where is None else bucket[where], minlength=channels * (n + 1))
        return hist.view(channels, n + 1).flip(1).cumsum(1).flip(1)[:, 1:]

    predicted, tp = above(None), above(truth)
    fn = truth.sum(1, keepdim=True) - tp
    dice_sorted = dice_from_counts(tp, predicted - tp, fn).T  # (n sorted, C)
    return dice_sorted[torch.argsort(order)]


def best_threshold(dice: torch.Tensor, thresholds: Sequence[float]) -> tuple[tuple[float, ...], torch.Tensor]:
    """From (cases, len(thresholds), C) Dice (`threshold_sweep` per case): per channel, the threshold with the best
    mean Dice over the cases (NaN left out; the first in `thresholds` on ties, the lowest for an ascending grid)
    and that mean."""
    mean = torch.nanmean(dice.double(), 0)  # (T, C)
    best = mean.nan_to_num(-math.inf).argmax(0)  # a threshold no case defines never wins
    return tuple(float(thresholds[int(i)]) for i in best), mean.gather(0, best[None])[0]
