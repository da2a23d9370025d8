"""What a training step minimises and what a validation scores, for each `train.supervision`; the one
LightningModule (`seg.train.module.SegmentationModule`) delegates to its objective.

- `FullSupervision`: Dice + CE with deep supervision on masks; validation: sliding-window Dice per class.
- `SeamSupervision`: SEAM's loss on presence labels; validation: Dice of the pseudo masks (scores with the case's
  own presence labels) at each background score of `BACKGROUNDS`, the best one per class chosen on these validation
  cases.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

import seg.metrics
from seg.config import SeamConfig, TrainConfig
from seg.train.loss import DeepSupervisionLoss
from seg.train.presence import presence_of
from seg.train.seam_loss import SeamLoss

# the background scores validation tries: 0.01 to 0.04, then 0.05 to 0.95 in steps of 0.05. Maps that peak narrowly
# inside a structure need a low score (DSB2018, 3-min SEAM models: validation Dice fell from the grid's old lowest
# score 0.05 upwards, the best lay below it)
BACKGROUNDS = (0.01, 0.02, 0.03, 0.04, *np.round(np.arange(0.05, 0.96, 0.05), 2).tolist())


def dice_per_class(pred: torch.Tensor, label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Foreground Dice per class of one case's (1, 1, *S) label maps (`seg.metrics`: NaN for a class in neither)."""
    return seg.metrics.dice_per_class(pred, label, num_classes)


class FullSupervision:
    name = "full"

    def __init__(self, cfg: TrainConfig):
        self.loss_fn = DeepSupervisionLoss(cfg.dice_weight, cfg.ce_weight)

    def loss(self, net, image: torch.Tensor, batch: dict, progress: float = 1.0
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = net.outputs(image, gates=False, deep_supervision=True)
        return self.loss_fn(out.logits, out.deep_supervision, batch["label"]), {}

    def validate(self, predict_logits: Callable, net, batch: dict, num_classes: int) -> torch.Tensor:
        """(K - 1,) Dice of this case."""
        pred = predict_logits(batch["image"]).argmax(dim=1, keepdim=True)
        return dice_per_class(pred, batch["label"], num_classes)


class SeamSupervision:
    name = "seam"

    def __init__(self, seam: SeamConfig, case_labels: dict[str, torch.Tensor] | None = None):
        self.loss_fn = SeamLoss(seam)
        self.seam, self.case_labels = seam, case_labels

    def loss(self, net, image: torch.Tensor, batch: dict, progress: float = 1.0
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms = self.loss_fn(net, image, batch["presence"], progress)
        return terms.total, terms.logged()

    def presence(self, batch: dict, num_classes: int) -> torch.Tensor:
        """(1, K - 1) image-level labels of a validation case: its labels-file entry, else the classes in its mask."""
        if self.case_labels is not None and batch["case_id"] in self.case_labels:
            return self.case_labels[batch["case_id"]][None]
        return presence_of(batch["label"], num_classes)[None]

    def validate(self, predict_logits: Callable, net, batch: dict, num_classes: int) -> torch.Tensor:
        """(len(BACKGROUNDS), K - 1) Dice of this case's pseudo mask at each background score."""
        scores = net.scores(batch["image"], self.presence(batch, num_classes).to(batch["image"].device))
        return sweep_backgrounds(scores[:, 1:], batch["label"], num_classes)


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

    One score for all classes trades one class against another: on Task04 the SEAM CAMs' best scores lie 0.2 apart
    (anterior 0.45, posterior 0.65; test Dice 0.183 / 0.406 with the shared 0.6, 0.211 / 0.419 per class)."""
    mean = dice.float().mean(0)  # (T, K - 1)
    best = mean.argmax(0)  # (K - 1,)
    return tuple(float(BACKGROUNDS[int(i)]) for i in best), mean.gather(0, best[None])[0]
