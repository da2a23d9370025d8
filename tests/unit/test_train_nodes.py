"""Training over several machines: what `train.num_nodes` needs, and each rank's own share of the training cases."""

from __future__ import annotations

import json

import pytest

from seg.config import ConfigError, TrainConfig
from seg.data.cache import CacheError
from seg.train.shards import SHARDS_FILE, check_shards, gather_shards, shard, write_shards

GIVEN = {"strategy": "ddp", "precision": "32", "channels_last": False, "val_every": 1}


def test_one_process_keeps_every_case_in_the_folds_order():
    assert shard(["c", "a", "b"], 0, 1) == ["c", "a", "b"]
    assert gather_shards(["c", "a"], 1) == [["c", "a"]]


@pytest.mark.parametrize("world", [2, 3, 4])
def test_ranks_take_every_world_th_case_of_the_sorted_ids(world):
    ids = [f"case_{i:03d}" for i in (5, 0, 3, 1, 4, 2, 6)]
    shards = [shard(ids, rank, world) for rank in range(world)]
    assert shards[1] == sorted(ids)[1::world]
    assert sorted(c for part in shards for c in part) == sorted(ids)  # every case on exactly one rank
    check_shards(shards, ids)


def test_shards_that_overlap_or_miss_a_case_name_the_cache():
    with pytest.raises(CacheError, match=r"hold 3 training cases \(2 distinct\) where the fold has 3: .* same"):
        check_shards([["a", "b"], ["b"]], ["a", "b", "c"])
    with pytest.raises(CacheError, match="Share data.cache_dir"):
        check_shards([["a"], ["x"]], ["a", "b"])


def test_the_shards_file_lists_each_ranks_cases(tmp_path):
    assert write_shards([["a", "c"], ["b"]], tmp_path) == [2, 1]
    record = json.loads((tmp_path / SHARDS_FILE).read_text())
    assert record == {"world_size": 2, "case_ids_by_rank": [["a", "c"], ["b"]]}


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
