"""Per-case agreement with a reference label map, in the original voxel grid and spacing: Dice, HD95 (mm),
volumes (mm^3, or pixel area for 2D)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch


def case_metrics(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], class_names: Sequence[str]) -> dict:
    """{class name: {dice, hd95, volume_pred, volume_ref}} for every foreground class.

    Dice is 1 when both are empty; HD95 is None when either is empty (undefined)."""
    from monai.metrics import compute_hausdorff_distance

    if pred.shape != ref.shape:
        raise ValueError(f"label map of shape {ref.shape} does not match the prediction's {pred.shape}")
    voxel = float(np.prod(spacing))
    out = {}
    for k, name in enumerate(class_names[1:], start=1):
        p, r = pred == k, ref == k
        ps, rs = int(p.sum()), int(r.sum())
        dice = 1.0 if ps + rs == 0 else 2.0 * int(np.logical_and(p, r).sum()) / (ps + rs)
        hd95 = None
        if ps and rs:
            as_batch = lambda m: torch.from_numpy(m)[None, None]  # noqa: E731
            value = float(compute_hausdorff_distance(as_batch(p), as_batch(r), percentile=95, spacing=list(spacing))[0, 0])
            hd95 = value if math.isfinite(value) else None
        out[name] = {"dice": dice, "hd95": hd95, "volume_pred": ps * voxel, "volume_ref": rs * voxel}
    return out


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
