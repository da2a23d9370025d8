"""A readable summary of a configured network: levels, gates, self-attention blocks, the maps it can return,
parameters and the cost of one forward pass."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import groupby
from typing import TYPE_CHECKING

import torch
from torch.utils.flop_counter import FlopCounterMode

from seg.config import ConfigError
from seg.models.attention_ops import Windows
from seg.models.build import build_model
from seg.models.self_attention import NonLocalBlock, SelfAttentionBlock

if TYPE_CHECKING:
    from seg.config import ModelConfig
    from seg.models.unet import AttentionUNet


def _shape(size: Sequence[int]) -> str:
    return "x".join(map(str, size))


def _check_dims(cfg: ModelConfig, size: Sequence[int], what: str) -> tuple[int, ...]:
    if len(size) != cfg.spatial_dims:
        raise ConfigError(f"{what} needs {cfg.spatial_dims} numbers for spatial_dims={cfg.spatial_dims}, got {size}.")
    return tuple(size)


def level_grid(net: AttentionUNet, level: int, patch: Sequence[int]) -> tuple[int, ...]:
    """The grid of level `level` for an input of `patch`: the patch padded to the size multiple, down-sampled."""
    padded = [math.ceil(p / m) * m for p, m in zip(patch, net.size_multiple, strict=True)]
    return tuple(p // f for p, f in zip(padded, net.level_factor(level), strict=True))


def self_attention_lines(net: AttentionUNet, patch: Sequence[int]) -> list[str]:
    """One line per self-attention block: site, kind, heads, window, its grid at `patch` and tokens per window."""
    lines = []
    for level, stage in enumerate(net.self_attention):
        grid = level_grid(net, level, patch)
        for block in getattr(stage, "blocks", ()):
            head = f"self-attention {block.site}: "
            if isinstance(block, NonLocalBlock):
                keys = [math.ceil(n / min(2, n)) for n in grid]
                lines.append(
                    head + f"nonlocal, 1 head, grid {_shape(grid)}: {math.prod(grid)} queries x "
                    f"{math.prod(keys)} keys (keys max-pooled by 2 per axis)"
                )
            elif isinstance(block, SelfAttentionBlock):
                windows = Windows.over(grid, block.window, block.shift)
                kind = "global" if block.window is None else f"window {block.window}" + (", shifted" * block.shift)
                kind += f", top-{block.top_k} keys" if block.top_k else ""
                lines.append(
                    head + f"{kind}, {block.heads} heads, grid {_shape(grid)}: {math.prod(windows.size)} tokens per "
                    f"window, {math.prod(windows.counts)} window(s) ({_shape(windows.counts)})"
                )
    return lines or ["self-attention: none"]


def _heads(gate) -> str:
    heads = len(gate.heads) if hasattr(gate, "heads") else 1
    return f"{heads} head" + ("s" * (heads > 1))


def map_lines(net: AttentionUNet) -> list[str]:
    """Every map `net.outputs(x, maps=True)` returns (`net.map_ids()`), one line per kind."""
    ids = sorted(net.map_ids(), key=lambda m: (m.kind, m.key))
    lines = [f"maps ({len(ids)}, `outputs(x, maps=True)`):"]
    for kind, group in groupby(ids, key=lambda m: m.kind):
        keys = [m.key for m in group]
        lines.append(f"  {kind} ({len(keys)}): {' '.join(keys)}")
    return lines if ids else ["maps: none"]


def summarize(cfg: ModelConfig, size: Sequence[int] | None = None, patch: Sequence[int] | None = None) -> str:
    """`size`: the input to cost (default 64 per axis); `patch`: the training patch the self-attention grids are
    given at (default: `size`)."""
    net = build_model(cfg).eval()
    size = _check_dims(cfg, size or (64,) * cfg.spatial_dims, "--size")
    where = f"at the training patch {_shape(patch)}" if patch else f"at the input {_shape(size)}"
    patch = _check_dims(cfg, patch or size, "the training patch")
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
    lines += [
        f"gate {name}: {_heads(net.gates[name])}, {cfg.gate_coefficients} coefficients {tuple(a.shape)}"
        for name, a in out.gates.items()
    ] or ["gates: none"]
    lines.append(where + ":")
    lines += ["  " + line for line in self_attention_lines(net, patch)]
    lines += map_lines(net)
    return "\n".join(lines)
