"""The background-score sweep of SEAM's maps: the Dice of the pseudo masks at every background score of a grid,
counted in one pass, and the per-class choice of the best score. Validation runs it after every evaluation, the
calibration after training thousands of times."""

from __future__ import annotations

import numpy as np
import torch

# the background scores validation tries: 0.01 to 0.04, then 0.05 to 0.95 in steps of 0.05. Maps that peak narrowly
# inside a structure need a low score, below the coarse grid's lowest step
BACKGROUNDS = (0.01, 0.02, 0.03, 0.04, *np.round(np.arange(0.05, 0.96, 0.05), 2).tolist())


def dice_per_class(pred: torch.Tensor, label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Foreground Dice per class (MONAI's compute_dice; 1 when both prediction and truth are empty)."""
    from monai.metrics import compute_dice

    onehot = lambda t: torch.zeros((1, num_classes, *t.shape[2:]), device=t.device).scatter_(1, t.long(), 1.0)  # noqa: E731
    return compute_dice(onehot(pred), onehot(label), include_background=False, ignore_empty=False)[0]


def sweep_backgrounds(maps: torch.Tensor, label: torch.Tensor, num_classes: int, backgrounds=BACKGROUNDS
                      ) -> torch.Tensor:
    """maps (1, K - 1, *S) class scores in [0, 1] -> (len(backgrounds), K - 1) Dice of argmax([t, maps]) per t
    (`dice_per_class`'s Dice: 1 when both prediction and truth are empty).

    Class k's mask, {voxels where k's map is the largest and above t}, depends on k's score t alone, so column k is
    also the Dice of class k under per-class scores, whatever the other classes' are. Counted in one pass over the
    voxels (a histogram of the winning scores over the sorted thresholds), not one per threshold: the calibration
    after SEAM training sweeps thousands of times."""
    best, cls = maps.float().max(1)  # (1, *S)
    t, order = torch.sort(torch.tensor([float(v) for v in backgrounds], dtype=torch.float32, device=maps.device))
    above = torch.searchsorted(t, best.flatten().contiguous(), right=False)  # thresholds strictly below the score
    cls, truth, n = cls.flatten(), label.flatten().long(), len(backgrounds)

    def counts(where: torch.Tensor) -> torch.Tensor:  # per threshold j, voxels of `where` with score > t[j]
        hist = torch.bincount(above[where], minlength=n + 1)
        return hist.flip(0).cumsum(0).flip(0)[1:]

    out = []
    for k in range(1, num_classes):
        mine = cls == k - 1
        predicted, hit, real = counts(mine), counts(mine & (truth == k)), (truth == k).sum()
        total = (predicted + real).float()
        out.append(torch.where(total > 0, 2 * hit.float() / total.clamp_min(1), torch.ones_like(total)))
    dice = torch.stack(out, dim=1)  # (T sorted, K - 1)
    return dice[torch.argsort(order)]


def choose_background(dice: torch.Tensor) -> tuple[tuple[float, ...], torch.Tensor]:
    """From (cases, len(BACKGROUNDS), K - 1) Dice: per class, the background score with its best mean Dice over the
    cases (see `sweep_backgrounds`: the classes' choices do not interact), and that mean Dice.

    One score for all classes trades one class against another: the best scores of different classes' maps can lie
    far apart."""
    mean = dice.float().mean(0)  # (T, K - 1)
    best = mean.argmax(0)  # (K - 1,)
    return tuple(float(BACKGROUNDS[int(i)]) for i in best), mean.gather(0, best[None])[0]
