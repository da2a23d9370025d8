"""Channel and spatial attention modules, placeable on any stage: SE (Hu et al. 2018), CBAM (Woo et al. 2018),
scSE (Roy et al. 2018). Each keeps the input's shape and reports its maps (`seg.models.maps`): channel weights, and for
CBAM and scSE the spatial map; spatial maps also pass a named tap, for hooks."""

from __future__ import annotations

import torch
from torch import nn

from seg.config import ATTENTION_MODULES, did_you_mean
from seg.models import layers
from seg.models.gates import CoefficientTap
from seg.models.maps import CHANNEL, SPATIAL, MapId, MapSource


def _hidden(channels: int, reduction: int) -> int:
    return max(channels // reduction, 1)  # odd or small channel counts still get one hidden unit


class SqueezeExcitation(MapSource):
    """Channel recalibration: global average pool -> bottleneck MLP (1x1 convs) -> sigmoid scales."""

    def __init__(self, spatial_dims: int, channels: int, reduction: int = 4):
        super().__init__()
        conv = layers.conv(spatial_dims)
        self.pool = layers.global_avg_pool(spatial_dims)
        self.mlp = nn.Sequential(
            conv(channels, _hidden(channels, reduction), 1),
            nn.ReLU(inplace=True),
            conv(_hidden(channels, reduction), channels, 1),
        )

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.mlp(self.pool(x)))  # (B, C, 1, ...)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weights(x)
        self.report(CHANNEL, w.flatten(1))
        return x * w

    def produces(self) -> list[MapId]:
        return [MapId(CHANNEL, self.site)]


class SpatialGate(nn.Module):
    """Spatial map from channel-wise mean and max, a k^d convolution and a sigmoid (CBAM's spatial branch)."""

    def __init__(self, spatial_dims: int, kernel_size: int = 7):
        super().__init__()
        self.conv = layers.conv(spatial_dims)(2, 1, kernel_size, padding=kernel_size // 2)
        self.tap = CoefficientTap()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The map (B, 1, *spatial) in [0, 1]."""
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)  # (B, 2, *spatial)
        return self.tap(torch.sigmoid(self.conv(pooled)))


class CBAM(MapSource):
    """Convolutional Block Attention Module: channel attention (shared MLP over avg- and max-pooled
    descriptors), then spatial attention."""

    def __init__(self, spatial_dims: int, channels: int, reduction: int = 4, kernel_size: int = 7):
        super().__init__()
        conv = layers.conv(spatial_dims)
        self.avg = layers.global_avg_pool(spatial_dims)
        self.max = layers.global_max_pool(spatial_dims)
        self.mlp = nn.Sequential(
            conv(channels, _hidden(channels, reduction), 1),
            nn.ReLU(inplace=True),
            conv(_hidden(channels, reduction), channels, 1),
        )
        self.spatial = SpatialGate(spatial_dims, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channel = torch.sigmoid(self.mlp(self.avg(x)) + self.mlp(self.max(x)))
        self.report(CHANNEL, channel.flatten(1))
        x = x * channel
        spatial = self.spatial(x)
        self.report(SPATIAL, spatial)
        return x * spatial

    def produces(self) -> list[MapId]:
        return [MapId(CHANNEL, self.site), MapId(SPATIAL, self.site)]


class SCSE(MapSource):
    """Concurrent spatial and channel squeeze-excitation: cSE and sSE applied in parallel and combined by
    element-wise max (the combination Roy et al. found best) or sum."""

    def __init__(self, spatial_dims: int, channels: int, reduction: int = 4, combine: str = "max"):
        super().__init__()
        if combine not in ("max", "sum"):
            raise ValueError(f"SCSE combine must be 'max' or 'sum', got combine={combine!r}.")
        self.cse = SqueezeExcitation(spatial_dims, channels, reduction)
        self.sse = layers.conv(spatial_dims)(channels, 1, 1)
        self.tap = CoefficientTap()
        self.combine = combine

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.cse.weights(x)
        alpha = self.tap(torch.sigmoid(self.sse(x)))  # (B, 1, *spatial) map
        self.report(CHANNEL, weights.flatten(1))
        self.report(SPATIAL, alpha)
        channel, spatial = x * weights, x * alpha
        return torch.maximum(channel, spatial) if self.combine == "max" else channel + spatial

    def produces(self) -> list[MapId]:
        return [MapId(CHANNEL, self.site), MapId(SPATIAL, self.site)]


def build_attention(name: str | None, spatial_dims: int, channels: int, reduction: int = 4) -> nn.Module:
    """Module by name, or identity for None/'none'."""
    if name in (None, "none"):
        return nn.Identity()
    if name == "se":
        return SqueezeExcitation(spatial_dims, channels, reduction)
    if name == "cbam":
        return CBAM(spatial_dims, channels, reduction)
    if name == "scse":
        return SCSE(spatial_dims, channels, reduction)
    raise ValueError(
        f"Unknown attention module {name!r}; expected one of {ATTENTION_MODULES} or 'none'."
        f"{did_you_mean(name, ATTENTION_MODULES)}"
    )
