"""Build a network from its config section."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from seg.models.unet import AttentionUNet

if TYPE_CHECKING:
    from seg.config import ModelConfig


def build_model(cfg: ModelConfig) -> AttentionUNet:
    """`AttentionUNet` with every field of `cfg` as its argument of the same name."""
    return AttentionUNet(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)})
