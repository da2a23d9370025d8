"""The network's multi-head layers and gates as units that can be masked and removed (Michel et al. 2019, "Are
Sixteen Heads Really Better than One?").

- A head layer is a multi-head gate (`gate_level{i}`, heads: its gates) or a self-attention block (`self_enc{i}b{j}`,
  heads: its attention heads). Masking head h multiplies its output by xi_h (1: as trained, 0: removed).
- A gate level as a whole (`gate_level{i}`, also single-head gates) is masked by moving its multiplier towards a
  fill value: xi = 0 with fill 1 passes the skip unweighted (the gate removed), with fill 0 blocks the skip.
- `prune` removes heads for real: a new network whose projections have the kept heads' rows and columns only, and
  whose config records the heads each layer kept (`model.heads_kept`); its output equals the masked network's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from seg.models.gates import AttentionGate, MultiHeadAttentionGate
from seg.models.self_attention import SelfAttentionBlock

PASS, BLOCK = 1.0, 0.0  # a masked gate's fill: the skip passes unweighted, or is blocked


@dataclass(frozen=True)
class HeadLayer:
    name: str  # gate_level0, self_enc3b0 (the map keys' prefix)
    kind: str  # "gate" or "self"
    heads: int
    module: nn.Module
    prefix: str  # the module's name in the network's state dict


def head_layers(net: nn.Module) -> list[HeadLayer]:
    """Every multi-head gate and self-attention block of `net`, in the order of its modules."""
    out = []
    for prefix, m in net.named_modules():
        if isinstance(m, MultiHeadAttentionGate):
            out.append(HeadLayer(f"gate_{m.site}", "gate", len(m.heads), m, prefix))
        elif isinstance(m, SelfAttentionBlock):
            out.append(HeadLayer(f"self_{m.site}", "self", m.heads, m, prefix))
    return out


def gate_levels(net: nn.Module) -> dict[str, nn.Module]:
    """Every gate on a skip (single- or multi-head) by name, `gate_level{i}`."""
    return {
        f"gate_{m.site}": m
        for m in net.modules()
        if isinstance(m, MultiHeadAttentionGate) or (isinstance(m, AttentionGate) and m.head_index is None)
    }


@contextmanager
def masked(
    net: nn.Module,
    heads: Mapping[str, torch.Tensor] | None = None,
    gates: Mapping[str, tuple[torch.Tensor, float]] | None = None,
) -> Iterator[None]:
    """Run `net` with head masks (layer name -> (heads,) xi) and gate masks (gate name -> (xi, fill)); tensors that
    require gradients give dL/dxi after a backward pass. Names `net` lacks are an error."""
    layers = {layer.name: layer.module for layer in head_layers(net)}
    levels = gate_levels(net)
    for name in [*(heads or {}), *(gates or {})]:
        if name not in layers and name not in levels:
            raise KeyError(f"{name!r}: no such head layer or gate; known: {sorted({*layers, *levels})}")
    try:
        for name, xi in (heads or {}).items():
            layers[name].head_mask = xi
        for name, mask in (gates or {}).items():
            levels[name].gate_mask = mask
        yield
    finally:
        for name in heads or {}:
            layers[name].head_mask = None
        for name in gates or {}:
            levels[name].gate_mask = None


def keep_only(net: nn.Module, keep: Mapping[str, Sequence[int]]) -> dict[str, torch.Tensor]:
    """Head masks that keep the listed heads of each named layer (others 0); layers not named keep all."""
    masks = {}
    for layer in head_layers(net):
        if layer.name in keep:
            xi = torch.zeros(layer.heads)
            xi[list(keep[layer.name])] = 1.0
            masks[layer.name] = xi
    return masks


def prune(net: nn.Module, keep: Mapping[str, Sequence[int]]) -> nn.Module:
    """A copy of `net` (an AttentionUNet) with only the listed heads of each named layer, for real: its output
    equals `net` under `masked(net, keep_only(net, keep))`. Each layer keeps at least one head."""
    layers = {layer.name: layer for layer in head_layers(net)}
    for name, kept in keep.items():
        if name not in layers:
            raise KeyError(f"{name!r}: no such head layer; known: {sorted(layers)}")
        if not kept or len(set(kept)) != len(kept) or not all(0 <= h < layers[name].heads for h in kept):
            raise ValueError(f"{name}: heads to keep must be distinct, in 0..{layers[name].heads - 1}, got {kept}")
    cfg = net.config
    counts = {**(cfg.heads_kept or {}), **{name: len(kept) for name, kept in keep.items()}}
    pruned = type(net)(dataclasses.replace(cfg, heads_kept=counts))
    state = net.state_dict()
    for name, kept in keep.items():
        layer = layers[name]
        slicer = _slice_gate if layer.kind == "gate" else _slice_self_attention
        state = slicer(state, layer, sorted(kept))
    pruned.load_state_dict(state)
    return pruned.train(net.training)


def _slice_gate(state: dict, layer: HeadLayer, kept: list[int]) -> dict:
    """Keep heads `kept` of a multi-head gate: its gates renumbered 0.., the combining convolution's input
    channels of the others dropped (each head contributes `in_channels` channels, in head order)."""
    p = layer.prefix
    out = {k: v for k, v in state.items() if not k.startswith(f"{p}.heads.")}
    for new, old in enumerate(kept):
        for k, v in state.items():
            if k.startswith(f"{p}.heads.{old}."):
                out[f"{p}.heads.{new}." + k.removeprefix(f"{p}.heads.{old}.")] = v
    w = state[f"{p}.combine.0.weight"]  # (C, heads * C, 1, ...)
    per_head = w.shape[1] // layer.heads
    columns = torch.cat([torch.arange(h * per_head, (h + 1) * per_head) for h in kept])
    out[f"{p}.combine.0.weight"] = w[:, columns]
    return out


def _slice_self_attention(state: dict, layer: HeadLayer, kept: list[int]) -> dict:
    """Keep heads `kept` of a self-attention block: their rows of the q, k and v projections and their columns
    of the output projection."""
    p, d, h = layer.prefix, layer.module.head_dim, layer.heads
    inner = h * d
    per_head = torch.cat([torch.arange(j * d, (j + 1) * d) for j in kept])
    rows = torch.cat([part * inner + per_head for part in range(3)])  # q, k, v: each `inner` rows, heads in order
    out = dict(state)
    out[f"{p}.qkv.weight"] = state[f"{p}.qkv.weight"][rows]
    out[f"{p}.qkv.bias"] = state[f"{p}.qkv.bias"][rows]
    out[f"{p}.proj.weight"] = state[f"{p}.proj.weight"][:, per_head]
    return out
