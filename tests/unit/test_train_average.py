"""The exponential moving average of the weights."""

from __future__ import annotations

import pytest
import torch
from train_fixture import fit_on


def test_ema_decay_ramps_up_from_the_first_steps_and_is_capped():
    from seg.train.average import ema_with_warmup

    update = ema_with_warmup(0.9)
    early, late = [torch.zeros(3)], [torch.zeros(3)]
    update(early, [torch.ones(3)], torch.tensor(1))  # after 1 update the decay is (1 + 1) / (10 + 1)
    update(late, [torch.ones(3)], torch.tensor(1000))  # the ramp would pass 0.99; the cap holds 0.9
    assert torch.allclose(early[0], torch.full((3,), 9 / 11)) and torch.allclose(late[0], torch.full((3,), 0.1))


def test_ema_is_off_by_request_and_rejects_a_decay_of_one():
    from lightning.pytorch.callbacks import WeightAveraging

    from seg.config import ConfigError, TrainConfig
    from seg.train.average import weight_average

    assert weight_average(TrainConfig(ema_decay=0.0)) == []
    assert isinstance(weight_average(TrainConfig(ema_decay=0.99))[0], WeightAveraging)
    with pytest.raises(ConfigError, match=r"train.ema_decay must be in \[0, 1\).*got 1.0"):
        TrainConfig(ema_decay=1.0)


def test_training_with_ema_hands_back_the_average_of_the_weights_it_stepped_through():
    import lightning as L

    from seg.config import TrainConfig
    from seg.train.average import weight_average

    class Spy(L.Callback):  # runs before the averaging callback: sees each step's raw weights
        def __init__(self):
            self.steps = []

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            self.steps.append([p.detach().clone() for p in module.parameters()])

    spy = Spy()
    images = [torch.randn(1, 1, 8, 8) for _ in range(4)]
    module = fit_on(images, callbacks=[spy, *weight_average(TrainConfig(ema_decay=0.5))])
    expected = spy.steps[0]
    for n, raw in enumerate(spy.steps[1:], start=1):
        beta = min(0.5, (1 + n) / (10 + n))
        expected = [(1 - beta) * w + beta * e for e, w in zip(expected, raw, strict=True)]
    final = [p.detach() for p in module.parameters()]
    assert all(torch.allclose(f, e, atol=1e-6) for f, e in zip(final, expected, strict=True))
    assert not all(
        torch.allclose(f, w) for f, w in zip(final, spy.steps[-1], strict=True)
    )  # not simply the last weights
