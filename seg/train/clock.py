"""One validation schedule and one clock for every rank of a distributed run.

Every rank has to validate after the same steps: a rank that validates while another trains pairs its collectives
with the wrong ones, and the run hangs or fails. Three things could make ranks disagree:
- the schedule itself, when `train.val_every: auto` is measured by each process (processes that `torchrun` or
  `srun` starts at once, before any of them has written its plan);
- `train.val_every_minutes`: Lightning checks a duration `val_check_interval` on each rank's own clock, read at
  slightly different moments, so one rank can be due after step n and another after step n + 1;
- and, for the learning rate under a time budget (the share of `train.max_time_minutes` spent, from each rank's own
  Timer), slightly different rates, so that the ranks' weights drift apart.

`SharedClock` makes rank 0's schedule and clock everyone's: when the processes meet every rank adopts rank 0's
validation plan, and after each training step rank 0's elapsed training time and whether a validation is due are
broadcast. A run of one process keeps Lightning's own clock and pays nothing."""

from __future__ import annotations

import math
import time
from datetime import timedelta

from lightning.pytorch.callbacks import Callback, Timer

from seg.train.schedule import ValidationPlan


def _timer(trainer) -> Timer | None:
    return next((cb for cb in trainer.callbacks if isinstance(cb, Timer)), None)


def _validate_as(trainer, plan: ValidationPlan) -> None:
    """Lightning's validation schedule set to `plan`'s, as `ValidationPlan.trainer_args` would have built it."""
    if not plan.validates:
        trainer.limit_val_batches = 0
    elif plan.every_minutes is None:
        trainer.check_val_every_n_epoch = plan.every_epochs
        trainer.val_check_interval, trainer._val_check_time_interval = 1.0, None
    else:
        trainer.check_val_every_n_epoch = None
        trainer.val_check_interval = timedelta(minutes=plan.every_minutes)
        trainer._val_check_time_interval = 60.0 * plan.every_minutes


class SharedClock(Callback):
    def __init__(self, plan: ValidationPlan):
        self.plan = plan  # this process's; rank 0's once the processes meet
        self.elapsed: float | None = None  # rank 0's training seconds at the last broadcast (None: not shared yet)
        self._last_validation = time.monotonic()  # on rank 0, the only one that decides

    @property
    def interval(self) -> float | None:
        """Seconds between validations, or None: by epochs (or none)."""
        return None if self.plan.every_minutes is None else 60.0 * self.plan.every_minutes

    def on_fit_start(self, trainer, pl_module) -> None:
        if trainer.world_size == 1:
            return
        if not hasattr(trainer, "_val_check_time_interval"):
            raise RuntimeError("SharedClock expects Lightning 2.6's time-based validation; this Lightning has none.")
        plan = trainer.strategy.broadcast(self.plan, src=0)
        if plan != self.plan:
            _validate_as(trainer, plan)
            self.plan = plan

    def on_train_start(self, trainer, pl_module) -> None:
        self._last_validation = time.monotonic()  # as Lightning counts from the start of training
        if trainer.world_size > 1:
            self.elapsed = trainer.strategy.broadcast(self._own_elapsed(trainer), src=0)

    def on_validation_end(self, trainer, pl_module) -> None:
        self._last_validation = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.world_size == 1:
            return
        due = self.interval is not None and time.monotonic() - self._last_validation >= self.interval
        self.elapsed, due = trainer.strategy.broadcast((self._own_elapsed(trainer), due), src=0)
        if self.interval is not None:  # Lightning validates when now - _last_val_time >= interval: rank 0's answer
            trainer._last_val_time = -math.inf if due else math.inf

    @staticmethod
    def _own_elapsed(trainer) -> float | None:
        timer = _timer(trainer)
        return None if timer is None else timer.time_elapsed("train")


def training_seconds(trainer) -> float | None:
    """Seconds of training so far (a resumed run counts its earlier time) by the run's one clock: rank 0's as last
    shared in a distributed run, else this process's Timer; None without a time budget (no Timer)."""
    clock = next((cb for cb in trainer.callbacks if isinstance(cb, SharedClock)), None)
    if clock is not None and clock.elapsed is not None and trainer.world_size > 1:
        return clock.elapsed
    timer = _timer(trainer)
    return None if timer is None else timer.time_elapsed("train")
