"""The background-score sweep of SEAM's maps (`seg.seam.sweep`) and the per-class choice of the score."""

from __future__ import annotations

import pytest
import torch
from seam_fixture import small

from seg.config import SeamConfig
from seg.seam.network import SeamNet
from seg.seam.sweep import BACKGROUNDS, choose_background, sweep_backgrounds


def test_background_sweep_and_choice():
    maps = torch.zeros(1, 2, 8, 8)
    maps[0, 0, :4] = 0.6  # class 1 in the top half at 0.6, noise of 0.2 at the bottom
    maps[0, 0, 4:] = 0.2
    label = torch.zeros(1, 1, 8, 8, dtype=torch.long)
    label[0, 0, :4] = 1
    dice = sweep_backgrounds(maps, label, 3)  # (T, 2)
    t, best = choose_background(dice[None])
    assert 0.2 <= t[0] < 0.6 and float(best[0]) == pytest.approx(1.0)
    assert float(dice[list(BACKGROUNDS).index(0.1), 0]) < 1.0  # a low background lets the noise in


def test_each_class_gets_its_own_background_score():
    """Class 1 is found at 0.9 over noise of 0.5, class 2 at 0.3 over nothing: no one score serves both (0.5 to 0.9
    loses class 2, below 0.5 lets class 1's noise in); one per class scores both perfectly, and the network applies
    them as the background channel of the winning class."""
    maps = torch.zeros(1, 2, 8, 8)
    maps[0, 0, :2], maps[0, 0, 2:4] = 0.9, 0.5
    maps[0, 1, 4:6] = 0.3
    label = torch.zeros(1, 1, 8, 8, dtype=torch.long)
    label[0, 0, :2], label[0, 0, 4:6] = 1, 2
    dice = sweep_backgrounds(maps, label, 3)
    shared = dice.mean(1).max()
    t, best = choose_background(dice[None])
    assert 0.5 <= t[0] < 0.9 and t[1] < 0.3 and best.tolist() == pytest.approx([1.0, 1.0]) and shared < 0.9
    net = SeamNet(small(2), SeamConfig(background=t)).eval()
    assert net.background.tolist() == pytest.approx(list(t))
    with torch.no_grad():
        scores = net.scores(torch.randn(1, 1, 16, 16), torch.ones(1, 2))
    winner = scores[:, 1:].argmax(1)
    assert torch.equal(scores[:, 0], torch.tensor(t)[winner].float())


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_the_counted_sweep_agrees_with_dice_per_threshold(spatial_dims) -> None:
    """sweep_backgrounds counts every threshold in one pass; it gives the Dice of thresholding and scoring each one
    (`seg.metrics`: NaN where both are empty), unsorted thresholds included."""
    from seg.metrics import dice_per_class

    gen = torch.Generator().manual_seed(spatial_dims)
    maps = torch.rand((1, 2) + (9,) * spatial_dims, generator=gen)
    maps[0, 1, 0] = 0.5  # scores exactly on a threshold: not above it
    label = torch.randint(0, 3, (1, 1) + (9,) * spatial_dims, generator=gen)
    label[label == 2] = 0  # class 2 absent from the truth
    thresholds = (0.5, 0.05, 0.95, 0.3, 0.99)
    best, cls = maps.max(1, keepdim=True)
    expected = torch.stack(
        [dice_per_class(torch.where(best > t, cls + 1, torch.zeros_like(cls)), label, 3) for t in thresholds]
    )
    assert torch.allclose(sweep_backgrounds(maps, label, 3, thresholds), expected.double(), atol=1e-6, equal_nan=True)
    assert sweep_backgrounds(torch.zeros_like(maps), torch.zeros_like(label), 3, (0.5,)).isnan().all()
