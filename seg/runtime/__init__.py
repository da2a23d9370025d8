"""What is fast on the machine a stage runs on: the machine's description, the cores this process may use, and
precision / memory-layout / window-batch choices resolved by timing the network itself (`seg.runtime.tune`).
Imports torch and `seg.config` only; stages call it before they build their Lightning trainer."""

from seg.runtime.machine import Machine, available_cores, describe_machine, is_rank_zero, threads_per_process
from seg.runtime.tune import InferSettings, TrainSettings, autocast, resolve_device, tune_inference, tune_training

__all__ = [
    "InferSettings",
    "Machine",
    "TrainSettings",
    "autocast",
    "available_cores",
    "describe_machine",
    "is_rank_zero",
    "resolve_device",
    "threads_per_process",
    "tune_inference",
    "tune_training",
]
