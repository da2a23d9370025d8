"""Build a network from its config section."""

from __future__ import annotations

from typing import TYPE_CHECKING

from seg.models.unet import AttentionUNet

if TYPE_CHECKING:
    from seg.config import ModelConfig


def build_model(cfg: ModelConfig) -> AttentionUNet:
    """The `AttentionUNet` that `cfg` describes (checked when `cfg` was made)."""
    return AttentionUNet(cfg)
