"""One clock for every rank of a distributed run.

Two decisions during training follow the wall clock: validating every `train.val_every_minutes` (Lightning checks
`val_check_interval` as a duration on each rank's own clock) and the learning rate under a time budget (the share of
`train.max_time_minutes` spent, from each rank's own Timer). Ranks read their clocks at slightly different moments:
one could validate after step n and another after step n + 1, so that their collectives pair wrongly and the run
hangs or fails, and they would step with slightly different learning rates, so that their weights drift apart.

`SharedClock` makes rank 0's clock everyone's: after each training step rank 0's elapsed training time and whether
a validation is due are broadcast, and every rank validates and schedules by them. A run of one process keeps
Lightning's own clock and pays nothing."""

from __future__ import annotations

import math
import time

from lightning.pytorch.callbacks import Callback, Timer


def _timer(trainer) -> Timer | None:
    return next((cb for cb in trainer.callbacks if isinstance(cb, Timer)), None)


class SharedClock(Callback):
    def __init__(self, every_minutes: float | None):
        self.interval = None if every_minutes is None else 60.0 * every_minutes  # validate every N s, or by epochs
        self.elapsed: float | None = None  # rank 0's training seconds at the last broadcast (None: not shared yet)
        self._last_validation = time.monotonic()  # on rank 0, the only one that decides

    def on_train_start(self, trainer, pl_module) -> None:
        self._last_validation = time.monotonic()  # as Lightning counts from the start of training
        if trainer.world_size > 1:
            if self.interval is not None and not hasattr(trainer, "_last_val_time"):
                raise RuntimeError(
                    "SharedClock expects Lightning's Trainer._last_val_time (Lightning 2.6); this Lightning has none."
                )
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
