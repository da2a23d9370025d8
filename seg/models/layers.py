"""Layer factories resolved once by `spatial_dims`, so every block has one code path for 2D and 3D."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from seg.config import ACTS, NORMS, did_you_mean
from seg.models.bf16_safe_conv import Conv3d

SpatialDims = int  # 2 or 3

_CONV_T = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_POOL_AVG = {2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}
_POOL_MAX = {2: nn.AdaptiveMaxPool2d, 3: nn.AdaptiveMaxPool3d}
_DROPOUT = {2: nn.Dropout2d, 3: nn.Dropout3d}


def per_axis(value: int | Sequence[int], spatial_dims: int) -> tuple[int, ...]:
    """A kernel size, stride or factor as one int per axis: an int is repeated, a sequence kept as it is."""
    return tuple(int(v) for v in value) if isinstance(value, Sequence) else (int(value),) * spatial_dims


def _check_dims(spatial_dims: int) -> None:
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got spatial_dims={spatial_dims}.")


def channels_last(spatial_dims: int) -> torch.memory_format:
    """The channels-last memory format of a (B, C, *spatial) tensor: NHWC in 2D, NDHWC in 3D."""
    _check_dims(spatial_dims)
    return torch.channels_last_3d if spatial_dims == 3 else torch.channels_last


def to_channels_last(t: torch.Tensor) -> torch.Tensor:
    """`t` (B, C, *spatial) or a kernel (C_out, C_in, *k) laid out channels-last; `t` itself where it already is.

    `.to`, not `.contiguous(memory_format=...)`: a one-channel tensor counts as contiguous in both layouts, and only
    `.to` restrides it (channel stride 1), which is what makes oneDNN pick its channels-last kernels for it."""
    return t.to(memory_format=channels_last(t.ndim - 2))


class _ChannelsLast:
    """Runs a convolution channels-last, its input and its kernel, whatever layout either arrives in. With few
    channels at full resolution, oneDNN's channels-last kernels are several times faster than its contiguous ones,
    but only when the kernel is channels-last too (see `FullResHead`). The kernel is converted on every call (a copy
    of a few thousand weights, which autograd sees), so `.to()`, `load_state_dict` and optimizers never need to know."""

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        # nn.Conv2d / nn.Conv3d pass every call through here (Conv3d's bf16 guard included): the one place for both
        return super()._conv_forward(to_channels_last(x), to_channels_last(weight), bias)  # type: ignore[misc]


class ChannelsLastConv2d(_ChannelsLast, nn.Conv2d):
    """nn.Conv2d that runs NHWC (see `_ChannelsLast`); same parameters, so weights load either way."""


class ChannelsLastConv3d(_ChannelsLast, Conv3d):
    """seg's Conv3d (with its CPU bf16 guard) that runs NDHWC (see `_ChannelsLast`); same parameters."""


_CONV = {2: nn.Conv2d, 3: Conv3d}  # Conv3d: nn.Conv3d that avoids a CPU bf16 NaN (seg/models/bf16_safe_conv.py)
_CONV_CL = {2: ChannelsLastConv2d, 3: ChannelsLastConv3d}


def conv(spatial_dims: int, channels_last: bool = False) -> type[nn.Module]:
    """The convolution class; `channels_last` gives one that always runs channels-last (`_ChannelsLast`)."""
    _check_dims(spatial_dims)
    return (_CONV_CL if channels_last else _CONV)[spatial_dims]


def memory_format_of(x: torch.Tensor) -> torch.memory_format:
    """Channels-last only for a tensor laid out that way and not also contiguous (one channel is both)."""
    if x.is_contiguous() or x.ndim not in (4, 5):
        return torch.contiguous_format
    layout = channels_last(x.ndim - 2)
    return layout if x.is_contiguous(memory_format=layout) else torch.contiguous_format


def conv_transpose(spatial_dims: int) -> type[nn.Module]:
    _check_dims(spatial_dims)
    return _CONV_T[spatial_dims]


def global_avg_pool(spatial_dims: int) -> nn.Module:
    _check_dims(spatial_dims)
    return _POOL_AVG[spatial_dims](1)


def global_max_pool(spatial_dims: int) -> nn.Module:
    _check_dims(spatial_dims)
    return _POOL_MAX[spatial_dims](1)


def dropout(spatial_dims: int, p: float) -> nn.Module:
    _check_dims(spatial_dims)
    return _DROPOUT[spatial_dims](p) if p > 0 else nn.Identity()


def norm(spatial_dims: int, name: str, channels: int) -> nn.Module:
    """Instance norm (affine, as nnU-Net) suits small batches; batch norm suits large ones."""
    _check_dims(spatial_dims)
    if name == "instance":
        return (nn.InstanceNorm2d if spatial_dims == 2 else nn.InstanceNorm3d)(channels, affine=True)
    if name == "batch":
        return (nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d)(channels)
    if name == "none":
        return nn.Identity()
    raise ValueError(f"Unknown norm {name!r}; expected one of {NORMS}.{did_you_mean(name, NORMS)}")


def act(name: str) -> nn.Module:
    if name == "leakyrelu":
        return nn.LeakyReLU(0.01, inplace=True)
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "prelu":
        return nn.PReLU()
    if name == "gelu":
        return nn.GELU()
    raise ValueError(f"Unknown act {name!r}; expected one of {ACTS}.{did_you_mean(name, ACTS)}")


def interp_mode(spatial_dims: int) -> str:
    """Mode for F.interpolate of coefficient maps: (bi|tri)linear by dimension."""
    _check_dims(spatial_dims)
    return "bilinear" if spatial_dims == 2 else "trilinear"
