"""The background-score sweep of SEAM's maps: the Dice of the pseudo masks at every background score of a grid,
counted in one pass, and the per-class choice of the best score. Validation runs it after every evaluation, the
calibration after training thousands of times."""

from __future__ import annotations

import math

import numpy as np
import torch

from seg.metrics import best_threshold, threshold_sweep

# the background scores validation tries: 0.01 to 0.04, then 0.05 to 0.95 in steps of 0.05. Maps that peak narrowly
# inside a structure need a low score, below the coarse grid's lowest step
BACKGROUNDS = (0.01, 0.02, 0.03, 0.04, *np.round(np.arange(0.05, 0.96, 0.05), 2).tolist())


def sweep_backgrounds(
    maps: torch.Tensor, label: torch.Tensor, num_classes: int, backgrounds=BACKGROUNDS
) -> torch.Tensor:
    """maps (1, K - 1, *S) class scores in [0, 1] -> (len(backgrounds), K - 1) Dice of argmax([t, maps]) per t
    (`seg.metrics`' Dice: NaN where the class is in neither).

    Class k's mask, {voxels where k's map is the largest and above t}, depends on k's score t alone, so column k is
    also the Dice of class k under per-class scores, whatever the other classes' are. Counted in one pass over the
    voxels (`seg.metrics.threshold_sweep`), not one per threshold: the calibration after SEAM training sweeps
    thousands of times."""
    best, cls = maps.float().max(1)  # (1, *S)
    classes = torch.arange(num_classes - 1, device=maps.device).view(-1, *[1] * best.dim())
    scores = torch.where(cls == classes, best, -math.inf)  # class k's winning score where it wins, else never
    truth = label[:, 0] == classes + 1
    return threshold_sweep(scores, truth, backgrounds)  # strictly above: ties go to background, as argmax([t, maps])


def choose_background(dice: torch.Tensor) -> tuple[tuple[float, ...], torch.Tensor]:
    """From (cases, len(BACKGROUNDS), K - 1) Dice: per class, the background score with its best mean Dice over the
    cases that define it (see `sweep_backgrounds`: the classes' choices do not interact), and that mean Dice.

    One score for all classes trades one class against another: the best scores of different classes' maps can lie
    far apart."""
    return best_threshold(dice, BACKGROUNDS)
