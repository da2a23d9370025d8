"""A 3D convolution that steps out of CPU bfloat16 autocast on grids with an axis of 2 voxels or fewer, or smaller
than its kernel.

On this project's CPU (torch 2.13, oneDNN), the bfloat16 weight gradient of a 3x3x3 stride-1 convolution whose
input has a first spatial axis of exactly 2 voxels reads uninitialised memory: it is NaN in a share of calls that
moves from run to run (a tenth to a third of direct calls at 2x3x2 or 2x2x2 with 128 channels, 2x3x2 being the
bottleneck of the strided-stem network at a 32x48x32 patch), never at 3 voxels or more, never for 1x1, strided
or transposed convolutions, never in float32 (benchmarks/bf16_conv_nan.py). Without this guard, training skips those
steps, or stops when they come in a row.

Such grids only occur at the coarsest levels of a deep U, where a float32 convolution costs nothing measurable,
so the guard is wider than the measured failure (any axis <= 2, any kernel > 1) in case other CPUs pick
other kernels. Parameter names are nn.Conv3d's, so weights load either way.

A second case: CBAM's 7x7x7 spatial convolution (2 channels in, 1 out) on a 4x8x4 decoder grid (32x64x32 patch,
Task04) hung training inside oneDNN's bf16 weight-gradient kernel (jit_avx512_core_bf16_convolution_bwd_weights:
minutes on one call, where the same call alone takes 16 ms). A kernel larger than the grid it slides over is
mostly padding; such a convolution now runs in float32 as well, at no measurable cost at these sizes.
"""

from __future__ import annotations

import torch
from torch import nn


def needs_float32(x: torch.Tensor, kernel_size: tuple[int, ...]) -> bool:
    """True where CPU bf16 autocast would run a convolution with a kernel > 1 on a grid with an axis <= 2 or an
    axis smaller than the kernel."""
    grid = x.shape[2:]
    return (
        x.device.type == "cpu"
        and torch.is_autocast_enabled("cpu")
        and torch.get_autocast_dtype("cpu") == torch.bfloat16
        and max(kernel_size) > 1
        and (min(grid) <= 2 or any(k > s for k, s in zip(kernel_size, grid, strict=True)))
    )


class Conv3d(nn.Conv3d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if needs_float32(x, self.kernel_size):
            with torch.autocast("cpu", enabled=False):
                return super().forward(x.float())
        return super().forward(x)
