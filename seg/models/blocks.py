"""Convolution blocks of the U: conv-norm-activation, two-conv stages (optionally residual), up-sampling, and the
full-resolution head after a strided stem."""

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


class FullResHead(nn.Module):
    """Back to the input grid after a strided stem: the finest decoder features, up-sampled by a transposed
    convolution, are fused with features computed from the image itself at full resolution (one convolution
    of `in_channels`, nearly free) by one 3x3 convolution. Boundaries are placed with full-resolution image
    evidence while every level of the U runs at a fraction of the voxels (MONAI's UNet also strides its
    first convolution).

    The head runs channels-last (NDHWC / NHWC) whatever the layout of its inputs and weights: with this few channels
    at full resolution, oneDNN's contiguous kernels are much slower than its channels-last ones, enough to slow a
    whole training step of the network (`benchmarks/models.py` measures both layouts). Its convolutions (and the 1x1
    head after it) convert input and kernel on every call (`layers.conv(..., channels_last=True)`); the transposed
    convolution gets a channels-last input, which is enough for it. The output is channels-last;
    `AttentionUNet.outputs` returns logits in the input's layout."""

    def __init__(self, spatial_dims: int, in_channels: int, c_in: int, c: int, stride: Sequence[int], block: dict):
        super().__init__()
        act = dict(norm=block["norm"], act=block["act"], channels_last=True)
        self.image = ConvNormAct(spatial_dims, in_channels, c, block["kernel_size"], **act)
        self.up = UpSample(spatial_dims, c_in, c, stride)
        self.fuse = ConvNormAct(spatial_dims, 2 * c, c, block["kernel_size"], **act)

    def forward(self, image: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        up = self.up(layers.to_channels_last(y))  # (B, c, *spatial), channels-last
        return self.fuse(torch.cat([self.image(image), up], dim=1))
