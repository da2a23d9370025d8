"""A tiny network config for SEAM's unit tests."""

from __future__ import annotations

from seg.config import ModelConfig


def small(dims: int, **kw) -> ModelConfig:
    return ModelConfig(spatial_dims=dims, out_channels=3, channels=(4, 8, 16), strides=(2, 2), deep_supervision=0, **kw)
