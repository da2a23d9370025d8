"""From per-case results to the metrics of the stage: thresholds chosen on selection cases, Dice at those
thresholds on the scored cases, and means over cases of everything else. Flat keys, finite numbers only."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from seg.explain import keys
from seg.explain.equivariance import by_family
from seg.explain.measure import CaseResult
from seg.explain.scores import THRESHOLDS, choose_threshold, dice_at
from seg.explain.transforms import SpatialTransform
from seg.metrics import best_threshold

KINDS = ("raw", "pcm")


def choose_thresholds(selection: Sequence[CaseResult], class_names: Sequence[str]) -> dict[str, dict[str, float]]:
    """{"raw" | "pcm": {class: threshold}} for the classes present in some selection case."""
    out: dict[str, dict[str, float]] = {kind: {} for kind in KINDS}
    for name in class_names:
        for kind in KINDS:
            curves = [getattr(r, f"curves_{kind}")[name] for r in selection if name in getattr(r, f"curves_{kind}")]
            if curves:
                out[kind][name] = choose_threshold(curves)
    return out


def mean_curves(results: Sequence[CaseResult], class_names: Sequence[str]) -> dict[str, np.ndarray]:
    """{"<class> raw" | "<class> pcm": mean Dice curve over the cases that have the class}."""
    out = {}
    for name in class_names:
        for kind in KINDS:
            curves = [getattr(r, f"curves_{kind}")[name] for r in results if name in getattr(r, f"curves_{kind}")]
            if curves:
                out[f"{name} {kind}"] = np.mean(np.stack(curves), axis=0)
    return out


def summarize_analysis(
    analysed: Sequence[CaseResult],
    scored: Sequence[CaseResult],
    thresholds: dict[str, dict[str, float]],
    transforms: Sequence[SpatialTransform],
    class_names: Sequence[str],
) -> dict[str, float]:
    """Flat metrics: means over `analysed` cases, Dice over `scored` cases at the chosen thresholds."""
    metrics: dict[str, float] = {"cases": float(len(analysed)), "cases_scored": float(len(scored))}
    per_key: dict[str, list[float]] = {}
    for r in analysed:
        for key, value in r.scores.items():
            per_key.setdefault(key, []).append(value)
        for map_id, errors in r.equivariance.items():
            for family, value in by_family(errors, transforms).items():
                per_key.setdefault(map_id.key(f"equivariance.{family}"), []).append(value)
    for key, values in sorted(per_key.items()):
        finite = [v for v in values if math.isfinite(v)]
        if key.endswith(".fallback"):
            metrics[f"{key}_cases"] = float(sum(finite))
        elif finite:
            metrics[key] = float(np.mean(finite))
    for name in class_names:
        for kind in KINDS:
            if name not in thresholds[kind]:
                continue
            t = thresholds[kind][name]
            curves = [getattr(r, f"curves_{kind}") for r in scored]
            dice = [dice_at(c[name], t) for c in curves if name in c]
            metrics[keys.cam(name, f"threshold_{kind}")] = t
            if dice:
                metrics[keys.cam(name, f"dice_{kind}")] = float(np.mean(dice))
    return metrics


def best_dice(results: Sequence[CaseResult], name: str, kind: str) -> tuple[float, float] | None:
    """(threshold, Dice) of the best mean Dice on `results` themselves: an optimistic bound, for the report."""
    curves = [getattr(r, f"curves_{kind}")[name] for r in results if name in getattr(r, f"curves_{kind}")]
    if not curves:
        return None
    (threshold,), (dice,) = best_threshold(torch.from_numpy(np.stack(curves))[..., None], THRESHOLDS)
    return threshold, float(dice)
