"""Build a network from its config sections."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from seg.models.unet import AttentionUNet

if TYPE_CHECKING:
    from seg.config import Config, ModelConfig, SeamConfig


def build_model(cfg: ModelConfig, seam: SeamConfig | None = None) -> nn.Module:
    """The `AttentionUNet` that `cfg` describes, or with `seam` the `SeamNet` (checked when the configs were made)."""
    if seam is not None:
        from seg.models.seam import SeamNet

        return SeamNet(cfg, seam)
    return AttentionUNet(cfg)


def build_for(config: Config) -> nn.Module:
    """The network a whole config trains: SEAM's with `train.supervision: seam`, else the U-Net."""
    return build_model(config.model, config.seam if config.train.supervision == "seam" else None)
