"""The run's one clock: every rank of a distributed run validates and schedules by rank 0's clock."""

from __future__ import annotations

import math
import time
from types import SimpleNamespace

from seg.train.clock import SharedClock, training_seconds


class FromRankZero:
    """A strategy as seen from rank 1: every broadcast answers with what rank 0 sent."""

    def __init__(self, *sent):
        self.sent, self.own = list(sent), []

    def broadcast(self, obj, src=0):
        assert src == 0
        self.own.append(obj)
        return self.sent.pop(0)


def _trainer(world_size: int, clock: SharedClock, strategy=None):
    return SimpleNamespace(world_size=world_size, callbacks=[clock], strategy=strategy, _last_val_time=0.0)


def test_a_rank_validates_when_rank_zero_says_so_whatever_its_own_clock_says():
    clock = SharedClock(every_minutes=1e-6)  # by its own clock, rank 1 is due after every step
    trainer = _trainer(2, clock, FromRankZero(None, (12.5, False), (13.0, True)))
    clock.on_train_start(trainer, None)
    time.sleep(0.001)  # 1 ms: well past the 60 us interval
    clock.on_train_batch_end(trainer, None, None, None, 0)
    assert trainer._last_val_time == math.inf  # rank 0: not due, so Lightning's now - last >= interval is False
    assert trainer.strategy.own[-1][1] is True  # what rank 1 would have decided alone
    assert training_seconds(trainer) == 12.5  # and the learning rate follows rank 0's time
    clock.on_train_batch_end(trainer, None, None, None, 1)
    assert trainer._last_val_time == -math.inf and training_seconds(trainer) == 13.0


def test_epoch_validation_is_left_to_lightning_but_the_time_is_still_shared():
    clock = SharedClock(every_minutes=None)
    trainer = _trainer(2, clock, FromRankZero(None, (4.0, False)))
    clock.on_train_start(trainer, None)
    clock.on_train_batch_end(trainer, None, None, None, 0)
    assert trainer._last_val_time == 0.0 and training_seconds(trainer) == 4.0


def test_one_process_keeps_lightnings_clock_and_broadcasts_nothing():
    clock = SharedClock(every_minutes=1e-6)
    trainer = _trainer(1, clock, strategy=None)  # any broadcast would fail on None
    clock.on_train_start(trainer, None)
    clock.on_train_batch_end(trainer, None, None, None, 0)
    assert trainer._last_val_time == 0.0 and clock.elapsed is None
    assert training_seconds(trainer) is None  # no time budget: no Timer, the schedule goes by steps
