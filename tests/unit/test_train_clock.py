"""The run's one schedule and clock: every rank of a distributed run validates and schedules by rank 0's."""

from __future__ import annotations

import math
import time
from datetime import timedelta
from types import SimpleNamespace

from seg.train.clock import SharedClock, training_seconds
from seg.train.schedule import ValidationPlan

BY_MINUTES = ValidationPlan(None, 1e-6, 3.0, 2.0, "measured")  # 60 us: due after every step
BY_EPOCHS = ValidationPlan(2, None, 3.1, 0.4, "measured")


class FromRankZero:
    """A strategy as seen from rank 1: every broadcast answers with what rank 0 sent."""

    def __init__(self, *sent):
        self.sent, self.own = list(sent), []

    def broadcast(self, obj, src=0):
        assert src == 0
        self.own.append(obj)
        return self.sent.pop(0)


def _trainer(world_size: int, clock: SharedClock, strategy=None):
    return SimpleNamespace(
        world_size=world_size,
        callbacks=[clock],
        strategy=strategy,
        _last_val_time=0.0,
        _val_check_time_interval=None,
        check_val_every_n_epoch=BY_EPOCHS.every_epochs,
        val_check_interval=1.0,
    )


def test_a_rank_validates_when_rank_zero_says_so_whatever_its_own_clock_says():
    clock = SharedClock(BY_MINUTES)
    trainer = _trainer(2, clock, FromRankZero(BY_MINUTES, None, (12.5, False), (13.0, True)))
    clock.on_fit_start(trainer, None)
    clock.on_train_start(trainer, None)
    time.sleep(0.001)  # 1 ms: well past the 60 us interval
    clock.on_train_batch_end(trainer, None, None, None, 0)
    assert trainer._last_val_time == math.inf  # rank 0: not due, so Lightning's now - last >= interval is False
    assert trainer.strategy.own[-1][1] is True  # what rank 1 would have decided alone
    assert training_seconds(trainer) == 12.5  # and the learning rate follows rank 0's time
    clock.on_train_batch_end(trainer, None, None, None, 1)
    assert trainer._last_val_time == -math.inf and training_seconds(trainer) == 13.0


def test_a_rank_that_measured_its_own_schedule_takes_rank_zeros():
    clock = SharedClock(BY_EPOCHS)  # what this rank measured; rank 0 measured a schedule by minutes
    trainer = _trainer(2, clock, FromRankZero(ValidationPlan(None, 0.5, 3.0, 2.0, "measured"), None, (4.0, False)))
    clock.on_fit_start(trainer, None)
    assert trainer.check_val_every_n_epoch is None and trainer._val_check_time_interval == 30.0
    assert trainer.val_check_interval == timedelta(seconds=30)
    clock.on_train_start(trainer, None)
    clock.on_train_batch_end(trainer, None, None, None, 0)
    assert trainer._last_val_time == math.inf  # 30 s not yet passed on rank 0

    clock = SharedClock(BY_MINUTES)  # and the other way round
    trainer = _trainer(2, clock, FromRankZero(BY_EPOCHS, None, (4.0, False)))
    trainer.check_val_every_n_epoch, trainer._val_check_time_interval = None, 60e-6
    clock.on_fit_start(trainer, None)
    assert (trainer.check_val_every_n_epoch, trainer._val_check_time_interval, trainer.val_check_interval) == (
        2,
        None,
        1.0,
    )
    clock.on_train_start(trainer, None)
    clock.on_train_batch_end(trainer, None, None, None, 0)
    assert trainer._last_val_time == 0.0  # by epochs: left to Lightning, but the time is still shared
    assert training_seconds(trainer) == 4.0


def test_one_process_keeps_lightnings_schedule_and_clock_and_broadcasts_nothing():
    clock = SharedClock(BY_MINUTES)
    trainer = _trainer(1, clock, strategy=None)  # any broadcast would fail on None
    clock.on_fit_start(trainer, None)
    clock.on_train_start(trainer, None)
    clock.on_train_batch_end(trainer, None, None, None, 0)
    assert trainer._last_val_time == 0.0 and clock.elapsed is None
    assert training_seconds(trainer) is None  # no time budget: no Timer, the schedule goes by steps
