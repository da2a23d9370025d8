"""Every named config in configs/ loads, builds the network it describes, and is documented for users."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from seg.config import load_config
from seg.models import build_model

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_named_config_is_in_the_getting_started_table(path):
    assert f"`configs/{path.name}`" in (REPO / "docs" / "getting-started.md").read_text(), (
        f"{path.name} is not in docs/getting-started.md's table of named configs; add a row saying what it changes"
    )


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_builds_the_network_it_describes(path):
    """What the file sets reaches the network: its keys in the loaded config, its gates, its output classes."""
    cfg = load_config(path)
    written = (yaml.safe_load(path.read_text()) or {}).get("model", {})
    for key, value in written.items():
        loaded = getattr(cfg.model, key)
        assert (list(loaded) if isinstance(loaded, tuple) else loaded) == value, f"{path.name}: model.{key}"
    net = build_model(cfg.model).eval()
    assert len(net.gate_names) == len(cfg.model.gated_levels())
    x = torch.zeros(1, cfg.model.in_channels, *(2 * m for m in net.size_multiple))
    with torch.no_grad():
        logits = net(x)
    assert logits.shape == (1, cfg.model.out_channels, *x.shape[2:])
