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


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_lists_a_map_for_every_attention_it_places(path):
    """Every self-attention placement and every CBAM/scSE decoder stage the file asks for has its maps, by name."""
    cfg = load_config(path).model
    sites = {(m.kind, m.site) for m in build_model(cfg).map_ids()}
    for stage, kind in enumerate(cfg.self_attention_per_stage()):
        assert (("self", f"enc{stage}b0") in sites) == (kind is not None), f"{path.name}: self-attention at {stage}"
    _, decoder = cfg.stage_attention()
    for stage, module in enumerate(decoder):
        assert (("spatial", f"dec{stage}") in sites) == (module in ("cbam", "scse")), f"{path.name}: dec{stage}"


def test_self_attention_config_places_global_attention_at_the_bottleneck_and_windows_at_level_1():
    net = build_model(load_config(REPO / "configs" / "self_attention.yaml").model)
    keys = {m.key for m in net.map_ids()}
    assert {f"self_enc3b0_h{h}" for h in range(4)} | {f"self_enc1b0_h{h}" for h in range(4)} <= keys
    assert not any(k.startswith(("self_enc0", "self_enc2")) for k in keys)
    assert [b.window for b in net.self_attention[3].blocks] == [None]  # global: one window over the whole grid
    assert [b.window for b in net.self_attention[1].blocks] == [4]
