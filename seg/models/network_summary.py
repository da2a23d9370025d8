"""A readable summary of a configured network: levels, gates, parameters and the cost of one forward pass."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch.utils.flop_counter import FlopCounterMode

from seg.config import ConfigError
from seg.models.build import build_model

if TYPE_CHECKING:
    from seg.config import ModelConfig


def summarize(cfg: ModelConfig, size: Sequence[int] | None = None) -> str:
    net = build_model(cfg).eval()
    size = tuple(size) if size else (64,) * cfg.spatial_dims
    if len(size) != cfg.spatial_dims:
        raise ConfigError(f"--size needs {cfg.spatial_dims} numbers for spatial_dims={cfg.spatial_dims}, got {size}.")
    x = torch.zeros(1, cfg.in_channels, *size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = net.outputs(x, gates=True, deep_supervision=False)
    lines = [
        f"AttentionUNet {cfg.spatial_dims}D: channels={list(cfg.channels)} strides={list(cfg.strides)} "
        f"stem_stride={cfg.stem_stride}",
        f"parameters: {sum(p.numel() for p in net.parameters()):,}",
        f"input (1, {cfg.in_channels}, {', '.join(map(str, size))}) -> logits {tuple(out.logits.shape)}",
        f"forward cost: {counter.get_total_flops() / 1e9:.2f} GFLOP",
        f"size multiple: {net.size_multiple} ({'padded and cropped back' if cfg.pad_input else 'required'})",
    ]
    lines += [f"gate {name}: coefficients {tuple(a.shape)}" for name, a in out.gates.items()] or ["gates: none"]
    return "\n".join(lines)
