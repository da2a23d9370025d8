"""Every named config in configs/ loads and builds its network: a renamed key or a bad value fails here."""

from __future__ import annotations

from pathlib import Path

import pytest

from seg.config import load_config
from seg.models import build_model

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def test_there_are_configs():
    assert len(CONFIGS) >= 4


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads_and_builds(path):
    cfg = load_config(path)
    net = build_model(cfg.model)
    assert sum(p.numel() for p in net.parameters()) > 0
