"""Training over several machines: what `train.num_nodes` needs."""

from __future__ import annotations

import pytest

from seg.config import ConfigError, TrainConfig

GIVEN = {"strategy": "ddp", "precision": "32", "channels_last": False, "val_every": 1}


def test_num_nodes_multiplies_the_processes():
    assert TrainConfig().num_nodes == 1 and TrainConfig().world_size() == 1
    assert TrainConfig(devices=2, num_nodes=3, **GIVEN).world_size() == 6
    TrainConfig(num_nodes=2, **{**GIVEN, "val_every": "auto"}, val_every_minutes=5.0)  # a given schedule


def test_num_nodes_must_be_positive():
    with pytest.raises(ConfigError, match=r"^train.num_nodes must be >= 1, got 0.$"):
        TrainConfig(num_nodes=0)


def test_several_machines_need_ddp():
    with pytest.raises(ConfigError, match=r"^train.num_nodes 2 needs train.strategy ddp, got 'auto'. Set train.st"):
        TrainConfig(num_nodes=2, **{**GIVEN, "strategy": "auto"})


def test_several_machines_need_what_each_machine_would_time_given():
    with pytest.raises(
        ConfigError,
        match=r"^train.num_nodes 2 needs train.precision and train.channels_last and train.val_every given, got "
        r"auto: each machine would time its own.*Set e.g. train.precision=32 train.channels_last=false",
    ):
        TrainConfig(num_nodes=2, strategy="ddp")
    with pytest.raises(ConfigError, match=r"needs train.val_every given, got auto"):
        TrainConfig(num_nodes=2, **{**GIVEN, "val_every": "auto"})
