"""Layers usable as CAM targets: every named module whose output is a (B, C, *spatial) tensor in a forward pass.

`seg layers MODEL` prints them with their output shapes for a patch-sized input; `analyze.cam_layers` takes
their names. The default target is what the 1x1 head reads: `full_res` (the full-resolution head of a network with
a strided stem) or else the last decoder stage `decoder.0`; for a SEAM network, what its classifier reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from seg.config import ConfigError, did_you_mean

DEFAULT_LAYER = "decoder.0"


def default_layer(net: nn.Module) -> str:
    """The input of the 1x1 head: `full_res` when the network has one (strided stem), else `decoder.0`; a SEAM
    network's classifier input (`cam_layer`)."""
    if getattr(net, "cam_layer", None):
        return net.cam_layer
    return "full_res" if getattr(net, "full_res", None) is not None else DEFAULT_LAYER


@dataclass(frozen=True)
class LayerInfo:
    name: str
    kind: str  # the module's class name
    shape: tuple[int, ...]  # output shape (B, C, *spatial) for the probed input


def layer_table(net: nn.Module, size: Sequence[int], in_channels: int) -> list[LayerInfo]:
    """Run one forward pass on zeros (1, in_channels, *size) and record every module's tensor output shape."""
    dims = len(size)
    shapes: dict[str, tuple[int, ...]] = {}
    modules = {name: m for name, m in net.named_modules() if name}
    hooks = [m.register_forward_hook(_record(name, shapes, dims)) for name, m in modules.items()]
    try:
        with torch.no_grad():
            _forward(net, torch.zeros(1, in_channels, *size))
    finally:
        for h in hooks:
            h.remove()
    return [LayerInfo(n, type(modules[n]).__name__, s) for n, s in shapes.items()]


def _record(name: str, shapes: dict, dims: int):
    def hook(module: nn.Module, args, output) -> None:
        if isinstance(output, torch.Tensor) and output.ndim == dims + 2:
            shapes[name] = tuple(output.shape)

    return hook


def _forward(net: nn.Module, x: torch.Tensor) -> None:
    if hasattr(net, "outputs"):
        net.outputs(x, gates=True, deep_supervision=False)
    else:
        net(x)


def format_layers(layers: list[LayerInfo], source: str) -> str:
    width = max((len(info.name) for info in layers), default=4)
    lines = [f"{source}: {len(layers)} layers usable as analyze.cam_layers (output shape for a patch-sized input)"]
    lines += [f"  {info.name:<{width}}  {info.kind:<22} {tuple(info.shape)}" for info in layers]
    return "\n".join(lines)


def resolve_layers(net: nn.Module, names: Sequence[str] | None) -> list[str]:
    """Check target names against the network's modules; None gives the default. Unknown names raise with the
    nearest valid name."""
    if not names:
        names = [default_layer(net)]
    valid = [name for name, _ in net.named_modules() if name]
    for name in names:
        if name not in valid:
            raise ConfigError(
                f"analyze.cam_layers: '{name}' is not a module of this network.{did_you_mean(name, valid, 0.5)} "
                f"Run `seg layers MODEL` for the valid names."
            )
    return list(dict.fromkeys(names))
