"""The cache of measured speed settings, per machine, torch version, network config, patch and batch, in
`$SEG_CACHE_DIR/autotune.json` (default `~/.cache/seg`). DDP ranks other than 0 wait for rank 0's entry, so every
rank trains and predicts with the same choice."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from seg.files import stable_hash, write_json
from seg.runtime.machine import describe_machine, is_rank_zero

WAIT_FOR_RANK0_S = 300.0  # DDP ranks > 0 take rank 0's measurement from the cache instead of timing concurrently


def cache_path() -> Path:
    root = os.environ.get("SEG_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "seg"
    return Path(root) / "autotune.json"


def read_cache() -> dict:
    try:
        return json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}


def write_cache(key: str, entry: dict) -> None:
    with contextlib.suppress(OSError):  # a read-only home: the next run measures again, nothing else changes
        write_json(cache_path(), {**read_cache(), key: entry})


def model_key(model_config) -> str:
    """A network config's identity for the cache (a `seg.config.ModelConfig`)."""
    from seg.config import to_dict

    return stable_hash(to_dict(model_config))


def cache_key(mode: str, device: torch.device, config_key: str, shape: Sequence[int], requested: dict) -> str:
    parts = [describe_machine().key(), mode, device.type, config_key, list(shape), torch.get_num_threads(), requested]
    return stable_hash(parts, length=24)


def cached(key: str) -> dict | None:
    entry = read_cache().get(key)
    if entry is not None or is_rank_zero():
        return entry
    deadline = time.monotonic() + WAIT_FOR_RANK0_S  # every DDP rank must pick the same precision: rank 0's
    while time.monotonic() < deadline:
        time.sleep(0.5)
        entry = read_cache().get(key)
        if entry is not None:
            return entry
    return None
