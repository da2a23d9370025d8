"""Dice + cross-entropy, with deep supervision weighted by resolution (nnU-Net: weights halve per level)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """1 - mean foreground soft Dice, summed over the batch (batch Dice: stable with small, sparse patches).

    logits (B, K, *spatial); target (B, 1, *spatial) integer labels.
    """
    probs = logits.float().softmax(dim=1)
    onehot = torch.zeros_like(probs).scatter_(1, target, 1.0)
    reduce = [0, *range(2, logits.ndim)]  # batch and space, per class
    inter = (probs * onehot).sum(reduce)
    denom = probs.sum(reduce) + onehot.sum(reduce)
    dice = (2 * inter + eps) / (denom + eps)
    return 1.0 - dice[1:].mean()  # foreground classes only


class DeepSupervisionLoss(nn.Module):
    """Weighted Dice + CE over the full-resolution logits and each coarser head, against a nearest-neighbour
    down-sampled target; level k gets weight 2^-k, normalised to sum to 1."""

    def __init__(self, dice_weight: float = 1.0, ce_weight: float = 1.0):
        super().__init__()
        self.dice_weight, self.ce_weight = dice_weight, ce_weight

    def single(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(logits.float(), target[:, 0])
        return self.dice_weight * soft_dice_loss(logits, target) + self.ce_weight * ce

    def forward(self, logits: torch.Tensor, deep: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        weights = [2.0**-k for k in range(len(deep) + 1)]
        total = sum(weights)
        loss = weights[0] / total * self.single(logits, target)
        for w, ds in zip(weights[1:], deep, strict=True):
            small = F.interpolate(target.float(), size=ds.shape[2:], mode="nearest").long()
            loss = loss + w / total * self.single(ds, small)
        return loss
