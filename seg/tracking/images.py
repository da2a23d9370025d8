"""Pictures shaped for MLflow's image cards (the run's Model metrics page), which the train stage (gate maps) and
the analysis stage (overlays) both log, and the keys MLflow accepts for them."""

from __future__ import annotations

import re

import numpy as np

CARD_ASPECT = 4 / 3  # width / height that MLflow's image card shows whole (its picture area is about 218 x 160 px)


def card_shaped(rgb: np.ndarray, aspect: float = CARD_ASPECT) -> np.ndarray:
    """`rgb` (H, W, 3) padded with white at the sides to at least `aspect`: MLflow 3.17's image card crops the
    bottom of a picture taller than its picture area, and scales every picture to the card's width."""
    h, w = rgb.shape[:2]
    extra = max(0, int(np.ceil(aspect * h)) - w)
    if extra == 0:
        return rgb
    left = extra // 2
    return np.pad(rgb, ((0, 0), (left, extra - left), (0, 0)), constant_values=255)


def image_key(name: str) -> str:
    """MLflow keys allow letters, digits, _ - . / and spaces; anything else becomes _."""
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", name)
