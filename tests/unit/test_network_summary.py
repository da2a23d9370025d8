"""`seg model`'s summary: the self-attention blocks at the training patch and every map the network returns."""

from __future__ import annotations

from pathlib import Path

import pytest

from seg.config import ConfigError, ModelConfig, load_config
from seg.models import build_model
from seg.models.network_summary import summarize

REPO = Path(__file__).resolve().parents[2]


def test_self_attention_blocks_are_listed_with_their_grid_at_the_training_patch():
    cfg = load_config(REPO / "configs" / "self_attention.yaml").model
    text = summarize(cfg, (32, 32, 32), patch=(32, 48, 32))
    # stem 2 and strides 2: level 1 is 1/4 of the patch (8x12x8, windows of 4^3), the bottleneck 1/16 (2x3x2)
    assert "at the training patch 32x48x32:" in text
    assert "self-attention enc1b0: window 4, 4 heads, grid 8x12x8: 64 tokens per window, 12 window(s) (2x3x2)" in text
    assert "self-attention enc3b0: global, 4 heads, grid 2x3x2: 12 tokens per window, 1 window(s) (1x1x1)" in text


def test_every_map_the_network_returns_is_listed_by_kind():
    cfg = load_config(REPO / "configs" / "self_attention.yaml").model
    text = summarize(cfg, (32, 32, 32))
    keys = [m.key for m in build_model(cfg).map_ids()]
    assert f"maps ({len(keys)}, `outputs(x, maps=True)`):" in text
    assert "  self (8): " + " ".join(f"self_enc{s}b0_h{h}" for s in (1, 3) for h in range(4)) in text
    assert "  spatial (3): spatial_dec0 spatial_dec1 spatial_dec2" in text
    assert all(k in text for k in keys)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_shifted_windows_and_non_local_blocks_say_what_they_attend_over(spatial_dims):
    cfg = ModelConfig(
        spatial_dims=spatial_dims,
        channels=(8, 16, 32),
        strides=(2, 2),
        deep_supervision=0,
        self_attention={1: "window", 2: "nonlocal"},
        self_attention_heads=2,
        self_attention_window=2,
        self_attention_depth=2,
    )
    text = summarize(cfg, (16,) * spatial_dims)
    grid = "x".join(["4"] * spatial_dims)  # level 1 at 1/4 of 16
    windows = 3**spatial_dims  # 4 positions, windows of 2 shifted by 1: 1 + 2 + 1 padded -> 3 per axis
    assert "at the input " + "x".join(["16"] * spatial_dims) in text
    assert (
        f"self-attention enc1b1: window 2, shifted, 2 heads, grid {grid}: {2**spatial_dims} tokens per window, "
        f"{windows} window(s)" in text
    )
    assert (
        f"self-attention enc2b0: nonlocal, 1 head, grid {'x'.join(['2'] * spatial_dims)}: {2**spatial_dims} "
        "queries x 1 keys" in text
    )


def test_a_plain_network_says_it_has_no_self_attention_and_a_wrong_patch_is_a_config_error():
    cfg = ModelConfig(spatial_dims=2, channels=(8, 16), strides=(2,), deep_supervision=0)
    assert "self-attention: none" in summarize(cfg, (16, 16))
    with pytest.raises(ConfigError, match="the training patch needs 2 numbers"):
        summarize(cfg, (16, 16), patch=(16, 16, 16))
