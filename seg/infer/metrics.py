"""Per-case agreement with a reference label map, in the original voxel grid and spacing: Dice, HD95 (mm),
normalised surface Dice at a tolerance (mm), volumes (mm^3, or pixel area for 2D)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch


def case_metrics(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], class_names: Sequence[str]) -> dict:
    """{class name: {dice, hd95, volume_pred, volume_ref}} for every foreground class.

    Dice is 1 when both are empty; HD95 is None when either is empty (undefined)."""
    if pred.shape != ref.shape:
        raise ValueError(f"label map of shape {ref.shape} does not match the prediction's {pred.shape}")
    keys = ("dice", "hd95", "volume_pred", "volume_ref")
    out = {}
    for k, name in enumerate(class_names[1:], start=1):
        m = class_metrics(pred == k, ref == k, spacing)
        out[name] = {key: m[key] for key in keys}
    return out


def class_metrics(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], tolerance: float | None = None,
    empty_dice: float = 1.0,
) -> dict:
    """{tp, fp, fn, dice, hd95, volume_pred, volume_ref[, surface_dice]} of one class's boolean masks.

    Dice is 2TP / (2TP + FP + FN), nnU-Net's formula; `empty_dice` when both masks are empty (1 here, NaN in
    nnU-Net and `seg evaluate`). HD95 (MONAI: the larger of the two directed 95th percentiles of edge-voxel
    distances, mm) is None when either mask is empty. With a `tolerance` (mm), also `surface_dice`."""
    from monai.metrics import compute_hausdorff_distance

    p, r = np.asarray(pred, dtype=bool), np.asarray(ref, dtype=bool)
    tp = int(np.logical_and(p, r).sum())
    fp, fn = int(p.sum()) - tp, int(r.sum()) - tp
    dice = empty_dice if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)
    hd95 = None
    if tp + fp and tp + fn:
        as_batch = lambda m: torch.from_numpy(m)[None, None]  # noqa: E731
        with warnings.catch_warnings():  # MONAI's own call of a deprecated argument of get_mask_edges
            warnings.filterwarnings("ignore", message=".*always_return_as_numpy", category=FutureWarning)
            value = compute_hausdorff_distance(as_batch(p), as_batch(r), percentile=95, spacing=list(spacing))
        hd95 = float(value[0, 0]) if math.isfinite(float(value[0, 0])) else None
    voxel = float(np.prod(spacing))
    out = {"tp": tp, "fp": fp, "fn": fn, "dice": dice, "hd95": hd95,
           "volume_pred": (tp + fp) * voxel, "volume_ref": (tp + fn) * voxel}
    if tolerance is not None:
        out["surface_dice"] = surface_dice(p, r, spacing, tolerance)
    return out


def surface_dice(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], tolerance: float) -> float:
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


def summarize_metrics(per_case: dict[str, dict], class_names: Sequence[str]) -> dict:
    """Means over cases: dice_<class>, hd95_<class> (over cases where it is defined) and dice_mean."""
    summary: dict[str, float | int | None] = {"cases": len(per_case)}
    dices = []
    for name in class_names[1:]:
        d = [m[name]["dice"] for m in per_case.values() if name in m]
        h = [m[name]["hd95"] for m in per_case.values() if name in m and m[name]["hd95"] is not None]
        summary[f"dice_{name}"] = float(np.mean(d)) if d else None
        summary[f"hd95_{name}"] = float(np.mean(h)) if h else None
        dices += d
    summary["dice_mean"] = float(np.mean(dices)) if dices else None
    return summary


def metrics_rows(per_case: dict[str, dict]) -> list[dict]:
    return [{"case": case, "class": name, **values} for case, m in sorted(per_case.items()) for name, values in m.items()]
