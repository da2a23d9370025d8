"""Intensity normalisation per channel: per-case z-score (MRI, microscopy), or CT's dataset-wide percentile clip
then z-score (Hounsfield units mean the same in every scan, so one global mapping keeps them comparable)."""

from __future__ import annotations

from typing import Any

import numpy as np

EPS = 1e-8


def scheme_for_modality(modality: str, configured: str) -> str:
    """`configured` unless it is "auto": CT gets "ct", every other modality "zscore"."""
    if configured != "auto":
        return configured
    return "ct" if modality.strip().upper() == "CT" else "zscore"


def normalize_channel(x: np.ndarray, params: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """Normalise one channel (float32 out); returns the parameters actually used, for the case's record."""
    scheme = params["scheme"]
    x = x.astype(np.float32, copy=False)
    if scheme == "zscore":
        mean, std = float(x.mean()), float(x.std())
        out = x - mean  # in place from here: a large volume holds one normalised copy, not two
        out /= max(std, EPS)
        return out, {"scheme": scheme, "mean": mean, "std": std}
    if scheme == "ct":
        out = np.clip(x, params["lower"], params["upper"])
        out -= params["mean"]
        out /= max(params["std"], EPS)
        return out, dict(params)
    if scheme == "none":
        return x, {"scheme": scheme}
    raise ValueError(f"unknown normalisation scheme {scheme!r}; expected zscore, ct or none.")


def ct_parameters(samples: np.ndarray, percentiles: tuple[float, float]) -> dict[str, Any]:
    """Global CT mapping from foreground intensity samples pooled over the dataset (nnU-Net's CTNormalization)."""
    lower, upper = (float(v) for v in np.percentile(samples, percentiles))
    clipped = np.clip(samples, lower, upper)
    return {"scheme": "ct", "lower": lower, "upper": upper, "mean": float(clipped.mean()), "std": float(clipped.std())}
