"""Build a network from its config sections. `train.supervision` says which kind of network a config trains; the
U-Net is this package's own, other kinds are registered by the packages that own their classes (`seg.seam`
registers SEAM's network when imported), so this tier never imports a tier above it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from torch import nn

from seg.models.unet import AttentionUNet

if TYPE_CHECKING:
    from seg.config import Config, ModelConfig

NETWORKS: dict[str, Callable[[Config], nn.Module]] = {"full": lambda config: AttentionUNet(config.model)}


def register_network(supervision: str, build: Callable[[Config], nn.Module]) -> None:
    """Make `build_for` build configs with `train.supervision: <supervision>` with `build`."""
    NETWORKS[supervision] = build


def build_model(cfg: ModelConfig) -> nn.Module:
    """The `AttentionUNet` that `cfg` describes."""
    return AttentionUNet(cfg)


def build_for(config: Config) -> nn.Module:
    """The network a whole config trains: the U-Net, or the kind registered for its `train.supervision`."""
    supervision = config.train.supervision
    if supervision not in NETWORKS:
        raise LookupError(
            f"train.supervision {supervision!r}: no network of that kind is registered (known: "
            f"{', '.join(sorted(NETWORKS))}); import the package that provides it (seg.seam for seam) "
            f"before building or loading such a model, or load models with seg.infer.load_model."
        )
    return NETWORKS[supervision](config)
