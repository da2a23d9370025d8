"""Speed settings resolved by timing on this machine: candidates, the pick, the cache, explicit settings."""

from __future__ import annotations

import dataclasses
import math
import time

import pytest
import torch

from seg.config import ConfigError, InferConfig, ModelConfig, TrainConfig
from seg.models import build_model
from seg.runtime import machine, tune
from seg.runtime.tune import tune_inference, tune_training

TINY = ModelConfig(spatial_dims=2, in_channels=1, out_channels=2, channels=(4, 8), strides=(2,), deep_supervision=0)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEG_CACHE_DIR", str(tmp_path))
    return tmp_path / "autotune.json"


def test_auto_times_float32_and_bf16_where_onednn_has_bf16_and_keeps_the_cache(cache):
    net = build_model(TINY)
    first = tune_training(net, (16, 16), 1, 2, config_key="tiny")
    labels = set(first.timings)
    assert {"32", "32 channels-last"} <= labels
    assert ("bf16-mixed" in labels) == machine.describe_machine().onednn_bf16
    assert first.timings[f"{first.precision}{' channels-last' if first.channels_last else ''}"] == first.step_seconds
    assert first.source == "measured" and first.chosen_by == {"precision": "auto", "channels_last": "auto"}
    again = tune_training(net, (16, 16), 1, 2, config_key="tiny")
    assert again.source == "cached" and dataclasses.replace(again, source="measured") == first
    other = tune_training(net, (16, 16), 1, 2, config_key="another network")
    assert other.source == "measured" and cache.is_file()


def test_a_cpu_without_onednn_bf16_never_times_bf16(cache, monkeypatch):
    fake = dataclasses.replace(machine.describe_machine(), onednn_bf16=False, cpu="an AVX2-only CPU")
    monkeypatch.setattr(tune, "describe_machine", lambda: fake)
    settings = tune_inference(build_model(TINY), (16, 16), 1, config_key="tiny")
    assert settings.precision == "32" and all(k.startswith("32 x") for k in settings.timings)
    assert "an AVX2-only CPU" in settings.describe()


def test_explicit_settings_win_and_a_single_choice_is_not_timed(cache):
    net = build_model(TINY)
    given = tune_training(net, (16, 16), 1, 2, precision="bf16-mixed", channels_last=False, config_key="tiny")
    assert (given.precision, given.channels_last) == ("bf16-mixed", False)
    assert list(given.timings) == ["bf16-mixed"] and given.chosen_by["precision"] == "given"
    fixed = tune_inference(net, (16, 16), 1, precision="32", sw_batch_size=3, config_key="tiny")
    assert (fixed.precision, fixed.sw_batch_size, fixed.timings) == ("32", 3, {})


def test_the_faster_candidate_wins_and_float32_wins_a_tie():
    assert tune._faster({"32": 1.0, "bf16-mixed": 0.5}, "32") == "bf16-mixed"
    assert tune._faster({"32": 1.0, "bf16-mixed": 0.99}, "32") == "32"  # within 3%: exact arithmetic
    assert tune._faster({"32": 0.2, "bf16-mixed": 9.0}, "32") == "32"


def test_a_candidate_whose_first_call_is_ten_times_the_best_is_abandoned_after_one_call(monkeypatch):
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.2)

    monkeypatch.setattr(tune, "ABANDON_AFTER_S", 0.05)
    assert math.isinf(tune._seconds(slow, torch.device("cpu"), best_so_far=0.01)) and len(calls) == 1
    assert tune._seconds(lambda: None, torch.device("cpu"), best_so_far=math.inf) < 0.01


def test_threads_default_to_the_cores_this_process_may_use(monkeypatch):
    monkeypatch.setattr(machine.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert machine.available_cores() == 4
    assert machine.threads_per_process(None, processes=2) == 2 and machine.threads_per_process(3) == 3
    assert machine.threads_per_process(None, processes=8) == 1


def test_auto_is_the_default_and_a_wrong_value_is_a_one_line_error():
    assert (TrainConfig().precision, TrainConfig().channels_last, TrainConfig().val_every) == ("auto",) * 3
    assert (InferConfig().precision, InferConfig().sw_batch_size, InferConfig().num_threads) == ("auto", "auto", None)
    with pytest.raises(ConfigError, match=r"train.channels_last must be 'auto' or bool, got 'yes'"):
        TrainConfig(channels_last="yes")
    with pytest.raises(ConfigError, match=r"infer.sw_batch_size must be 'auto' or >= 1, got 0"):
        InferConfig(sw_batch_size=0)
    with pytest.raises(ConfigError, match=r"train.precision must be one of auto, 32.*Did you mean 'bf16-mixed'"):
        TrainConfig(precision="bf16-mix")


def test_the_machine_line_names_cpu_capability_bf16_and_cores():
    line = machine.describe_machine().line()
    m = machine.describe_machine()
    assert m.capability in line and f"{m.cores} cores" in line and "bf16" in line and m.torch_version in line


def test_rank_zero_is_the_process_without_a_launcher_rank_or_with_rank_0(monkeypatch):
    from seg.runtime import is_rank_zero

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv("SLURM_LOCALID", raising=False)
    assert is_rank_zero()
    monkeypatch.setenv("SLURM_LOCALID", "1")  # srun's second task on this machine, before Lightning sets LOCAL_RANK
    assert not is_rank_zero()
    monkeypatch.setenv("LOCAL_RANK", "0")  # a launcher's LOCAL_RANK is the one that counts
    assert is_rank_zero()
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert not is_rank_zero()
