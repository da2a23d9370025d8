"""Convolution blocks of the U: conv-norm-activation, two-conv stages (optionally residual), up-sampling."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from seg.models import layers


class ConvNormAct(nn.Sequential):
    """Convolution -> norm -> dropout -> activation, 'same' padding; bias only when there is no norm.
    `channels_last`: the convolution always runs channels-last (`layers.conv`)."""

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int] = 3,
        stride: int | Sequence[int] = 1,
        norm: str = "instance",
        act: str | None = "leakyrelu",
        dropout: float = 0.0,
        channels_last: bool = False,
    ):
        ks = layers.per_axis(kernel_size, spatial_dims)
        super().__init__(
            layers.conv(spatial_dims, channels_last)(
                in_channels,
                out_channels,
                ks,
                stride=layers.per_axis(stride, spatial_dims),
                padding=tuple(k // 2 for k in ks),
                bias=norm == "none",
            ),
            layers.norm(spatial_dims, norm, out_channels),
            layers.dropout(spatial_dims, dropout),
            layers.act(act) if act else nn.Identity(),
        )


class ConvBlock(nn.Module):
    """`num_convs` ConvNormAct layers; the first may stride. With `residual`, a projected shortcut is added
    before the last activation (He et al. 2016), which helps deeper or longer-trained networks."""

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int] = 3,
        stride: int | Sequence[int] = 1,
        norm: str = "instance",
        act: str = "leakyrelu",
        dropout: float = 0.0,
        residual: bool = False,
        num_convs: int = 2,
    ):
        super().__init__()
        if num_convs < 1:
            raise ValueError(f"num_convs must be >= 1, got num_convs={num_convs}.")
        convs = []
        for i in range(num_convs):
            last = i == num_convs - 1
            convs.append(
                ConvNormAct(
                    spatial_dims,
                    in_channels if i == 0 else out_channels,
                    out_channels,
                    kernel_size,
                    stride if i == 0 else 1,
                    norm,
                    None if (residual and last) else act,
                    dropout,
                )
            )
        self.convs = nn.Sequential(*convs)
        self.residual = residual
        if residual:
            strided = any(s != 1 for s in layers.per_axis(stride, spatial_dims))
            self.shortcut: nn.Module = (
                ConvNormAct(spatial_dims, in_channels, out_channels, 1, stride, norm, None)
                if strided or in_channels != out_channels
                else nn.Identity()
            )
            self.out_act = layers.act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.residual:
            return self.convs(x)
        return self.out_act(self.convs(x) + self.shortcut(x))


class UpSample(nn.Module):
    """Transposed convolution with kernel = stride: the learned inverse of a strided down-sampling."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, stride: int | Sequence[int]):
        super().__init__()
        s = layers.per_axis(stride, spatial_dims)
        self.up = layers.conv_transpose(spatial_dims)(in_channels, out_channels, s, stride=s, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(x)
