"""The LightningModule: non-finite steps, gradient clipping, the layout, the time budget and its schedule."""

from __future__ import annotations

import pytest
import torch
from train_fixture import fit_on


def test_nonfinite_step_is_skipped_and_weights_stay_finite():
    good = [torch.randn(1, 1, 8, 8) for _ in range(4)]
    module = fit_on(good[:2] + [torch.full((1, 1, 8, 8), float("nan"))] + good[2:])
    assert module.skipped_steps == 1
    assert all(torch.isfinite(p).all() for p in module.net.parameters())


def test_persistent_nonfinite_gradients_stop_training_with_a_clear_error():
    with pytest.raises(FloatingPointError, match=r"3 consecutive training steps had non-finite gradients.*train.lr"):
        fit_on([torch.full((1, 1, 8, 8), float("inf"))] * 5, limit=3)


def test_finite_gradients_are_clipped_to_the_configured_norm():
    from seg.config import TrainConfig
    from seg.models import AttentionUNet
    from seg.train.module import SegmentationModule

    net = AttentionUNet(
        spatial_dims=2, in_channels=1, out_channels=2, channels=(4, 8), strides=(2,), deep_supervision=0
    )
    module = SegmentationModule(net, TrainConfig(), ["bg", "fg"], (8, 8))
    for p in net.parameters():
        p.grad = torch.full_like(p, 3.0)
    module.configure_gradient_clipping(torch.optim.SGD(net.parameters(), lr=0.1), 1.0, "norm")
    assert float(torch.nn.utils.get_total_norm([p.grad for p in net.parameters()])) == pytest.approx(1.0, rel=1e-4)
    assert module.skipped_steps == 0


def test_training_runs_channels_last_and_hands_back_a_contiguous_network(monkeypatch):
    from seg.train.module import SegmentationModule

    seen, original = [], SegmentationModule.training_step

    def spy(self, batch, batch_idx):
        convs = [p for p in self.net.parameters() if p.ndim == 4 and p.shape[1] > 1 and p.shape[2] > 1]
        seen.append(all(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in convs))
        return original(self, batch, batch_idx)

    monkeypatch.setattr(SegmentationModule, "training_step", spy)
    module = fit_on([torch.randn(1, 1, 8, 8) for _ in range(2)])
    assert seen == [True, True]
    assert all(p.is_contiguous() for p in module.net.parameters())


def test_a_time_budget_alone_is_the_budget_and_the_schedule_decays_over_it():
    from seg.config import ConfigError, TrainConfig
    from seg.train.module import SegmentationModule

    assert TrainConfig(max_time_minutes=10).epoch_limit() is None  # no hidden epoch cap ends a budgeted run
    assert TrainConfig().epoch_limit() == 100  # neither limit given: 100 epochs
    both = TrainConfig(max_epochs=5, max_time_minutes=10)
    assert both.epoch_limit() == 5 and "whichever comes first" in both.describe_limits()
    assert "for 10 min (no epoch limit)" in TrainConfig(max_time_minutes=10).describe_limits()
    with pytest.raises(ConfigError, match="max_epochs must be an int >= 1, or null"):
        TrainConfig(max_epochs=0)
    module = SegmentationModule(
        torch.nn.Conv3d(1, 2, 1), TrainConfig(max_time_minutes=10, steps_per_epoch=50), ["bg", "fg"], (8, 8, 8)
    )
    assert module.total_steps is None and module.progress(10**6) == 0.0  # steps alone never end a budgeted run
    limited = SegmentationModule(torch.nn.Conv3d(1, 2, 1), both, ["bg", "fg"], (8, 8, 8))
    assert limited.total_steps == 250 and limited.progress(125) == 0.5
