"""Scores of maps against reference masks, on one grid: Dice over thresholds (and the threshold chosen on cases
other than those scored), the share of map mass inside the mask, and Pearson correlation between two maps."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from seg.metrics import best_threshold, threshold_sweep

THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 .. 0.95


def min_max(t: torch.Tensor) -> torch.Tensor:
    """Map scaled to [0, 1] per case and class; a constant map becomes zeros."""
    lo, hi = t.min(), t.max()
    return (t - lo) / (hi - lo) if hi > lo else torch.zeros_like(t)


def dice_curve(cam: torch.Tensor, mask: torch.Tensor, thresholds: Sequence[float] = THRESHOLDS) -> np.ndarray:
    """Dice of (min_max(cam) >= t) against `mask` for each threshold t (`seg.metrics.threshold_sweep`: NaN where
    both are empty); cam and mask (*S)."""
    norm = min_max(cam.float())
    return threshold_sweep(norm[None], mask.bool()[None], thresholds, inclusive=True)[:, 0].numpy()


def choose_threshold(curves: Sequence[np.ndarray], thresholds: Sequence[float] = THRESHOLDS) -> float:
    """The threshold of the best mean Dice over `curves` (selection cases); the lowest one on ties."""
    if not curves:
        raise ValueError("choose_threshold: no Dice curves (no selection case has this class).")
    chosen, _ = best_threshold(torch.from_numpy(np.stack(curves))[..., None], thresholds)
    return chosen[0]


def dice_at(curve: np.ndarray, threshold: float, thresholds: Sequence[float] = THRESHOLDS) -> float:
    return float(curve[int(np.argmin(np.abs(np.asarray(thresholds) - threshold)))])


def energy_inside(heat: torch.Tensor, mask: torch.Tensor) -> float:
    """sum(heat inside mask) / sum(heat) for a non-negative map; NaN for a zero map."""
    heat = heat.double().clamp_min(0)
    total = float(heat.sum())
    return float((heat * mask.bool()).sum()) / total if total > 0 else float("nan")


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two same-shape maps over all voxels; NaN when either is constant."""
    a, b = a.double().flatten(), b.double().flatten()
    a, b = a - a.mean(), b - b.mean()
    den = float(a.norm() * b.norm())
    return float((a * b).sum()) / den if den > 0 else float("nan")
