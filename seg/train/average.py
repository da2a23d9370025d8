"""An exponential moving average (EMA) of the weights, through Lightning's WeightAveraging callback."""

from __future__ import annotations

from collections.abc import Callable

import torch

from seg.config import TrainConfig


def ema_with_warmup(decay: float) -> Callable[[list[torch.Tensor], list[torch.Tensor], torch.Tensor], None]:
    """`multi_avg_fn` for torch.optim.swa_utils.AveragedModel: EMA whose decay ramps up as (1 + n) / (10 + n)
    after n updates, capped at `decay`. A fixed 0.999 would still weigh the random initial weights by 0.999^n
    (41% after 900 steps, a 2-minute run); the ramp lets short runs average only their recent steps."""

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        n = float(num_averaged)
        beta = min(decay, (1.0 + n) / (10.0 + n))
        torch._foreach_lerp_(averaged, current, 1.0 - beta)

    return update


def weight_average(tc: TrainConfig) -> list:
    """The callback when `train.ema_decay` > 0, else none. The average is what validation scores, checkpoints hold
    as `state_dict` and the model folder saves; the raw weights keep training (and resume from the checkpoint's
    `current_model_state`)."""
    if tc.ema_decay <= 0:
        return []
    from lightning.pytorch.callbacks import WeightAveraging

    return [WeightAveraging(multi_avg_fn=ema_with_warmup(tc.ema_decay))]
