"""The CPU bf16 guard of seg's Conv3d: float32 on grids with an axis of <= 2 voxels or smaller than the kernel,
bf16 elsewhere."""

import pytest
import torch

from seg.config import ModelConfig
from seg.models import build_model
from seg.models.bf16_safe_conv import Conv3d


def _out_dtype(conv: torch.nn.Module, grid: tuple[int, ...]) -> torch.dtype:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return conv(torch.randn(1, 4, *grid)).dtype


@pytest.mark.parametrize(
    "grid, dtype",
    [
        ((2, 3, 2), torch.float32),
        ((2, 8, 8), torch.float32),
        ((4, 2, 4), torch.float32),
        ((3, 3, 3), torch.bfloat16),
        ((5, 7, 5), torch.bfloat16),
    ],
)
def test_guard_leaves_bf16_only_on_tiny_axes(grid, dtype):
    assert _out_dtype(Conv3d(4, 4, 3, padding=1, bias=False), grid) == dtype


@pytest.mark.parametrize("grid, dtype", [((4, 8, 4), torch.float32), ((8, 16, 8), torch.bfloat16)])
def test_guard_leaves_bf16_where_the_kernel_is_larger_than_the_grid(grid, dtype):
    assert _out_dtype(Conv3d(4, 1, 7, padding=3), grid) == dtype  # CBAM's spatial convolution


def test_guard_spares_pointwise_convs_and_plain_float32():
    assert _out_dtype(Conv3d(4, 4, 1), (2, 2, 2)) == torch.bfloat16  # 1x1 weight gradients were never wrong
    conv = Conv3d(4, 4, 3, padding=1)
    assert conv(torch.randn(1, 4, 2, 2, 2)).dtype == torch.float32  # no autocast: untouched


def test_guarded_gradients_are_float32_and_finite():
    conv = Conv3d(128, 128, 3, padding=1, bias=False)
    for _ in range(20):
        conv.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = conv(torch.randn(2, 128, 2, 3, 2))
        y.backward(torch.randn_like(y))
        assert torch.isfinite(conv.weight.grad).all()


def test_networks_use_it_and_keep_nn_conv3d_weight_names():
    net = build_model(ModelConfig(stem_stride=2))
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)]
    assert convs and all(isinstance(m, Conv3d) for m in convs)
    plain = torch.nn.Conv3d(4, 8, 3)
    Conv3d(4, 8, 3).load_state_dict(plain.state_dict())  # same keys and shapes as nn.Conv3d


def test_channels_last_convolutions_keep_the_guard_the_numbers_and_the_weight_names():
    from seg.models.layers import ChannelsLastConv2d, ChannelsLastConv3d, to_channels_last

    torch.manual_seed(0)
    for dims, plain_cls, cl_cls in ((2, torch.nn.Conv2d, ChannelsLastConv2d), (3, Conv3d, ChannelsLastConv3d)):
        plain, cl = plain_cls(1, 4, 3, padding=1), cl_cls(1, 4, 3, padding=1)
        cl.load_state_dict(plain.state_dict())  # same keys and shapes: saved weights load either way
        x = torch.randn(2, 1, *(6,) * dims)  # one channel: contiguous in both layouts
        y = cl(x)
        assert y.stride(1) == 1 and not y.is_contiguous()  # ran channels-last from a contiguous input and kernel
        torch.testing.assert_close(y, plain(x), rtol=1e-5, atol=1e-6)
        kernel = to_channels_last(cl.weight)  # what the convolution is given: restrided although one channel
        assert kernel.stride(1) == 1 and cl.weight.stride(1) != 1
    assert _out_dtype(ChannelsLastConv3d(4, 4, 3, padding=1), (2, 3, 2)) == torch.float32  # Conv3d's bf16 guard
    assert _out_dtype(ChannelsLastConv3d(4, 4, 3, padding=1), (3, 3, 3)) == torch.bfloat16
