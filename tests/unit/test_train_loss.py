"""The training losses: soft Dice with deep supervision."""

from __future__ import annotations

import pytest
import torch

from seg.train.loss import DeepSupervisionLoss, soft_dice_loss


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_dice_loss_low_for_perfect_and_high_for_wrong(spatial_dims):
    target = torch.randint(0, 3, (2, 1, *(8,) * spatial_dims))
    perfect = torch.zeros(2, 3, *(8,) * spatial_dims).scatter_(1, target, 20.0)
    wrong = torch.zeros(2, 3, *(8,) * spatial_dims).scatter_(1, (target + 1) % 3, 20.0)
    assert soft_dice_loss(perfect, target) < 1e-3
    assert soft_dice_loss(wrong, target) > 0.99


def test_deep_supervision_loss_uses_downsampled_targets():
    target = torch.zeros(1, 1, 8, 8, 8, dtype=torch.long)
    target[..., :4, :, :] = 1
    full = torch.zeros(1, 2, 8, 8, 8).scatter_(1, target, 20.0)
    half = torch.zeros(1, 2, 4, 4, 4).scatter_(1, target[..., ::2, ::2, ::2], 20.0)
    loss = DeepSupervisionLoss()
    assert loss(full, [half], target) < 1e-3
    assert loss(full, [half.flip(2)], target) > 0.3  # the coarse head counts, with weight 1/3
