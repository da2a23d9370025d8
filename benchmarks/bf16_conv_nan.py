"""How often the CPU bfloat16 weight gradient of a 3x3x3 convolution is not finite, by grid and channels, for
the op itself (aten.convolution_backward on bf16 tensors, what autocast dispatches to), for torch.nn.Conv3d under
autocast, and for seg's guarded Conv3d (seg/models/bf16_safe_conv.py).

Each cell runs forward + backward under CPU bf16 autocast for `--seconds`, one random input and fresh random
upstream gradients, as seg's conv blocks do (no bias: a norm follows), and counts the calls whose weight gradient
holds a NaN or inf. The fault reads uninitialised memory, so its rate moves from run to run and cell to cell. A
non-zero count in the first two columns is the oneDNN fault the guard exists for; the last column must stay 0.

Run:  python benchmarks/bf16_conv_nan.py [--seconds 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from seg.models.bf16_safe_conv import Conv3d

CASES = [  # (channels, grid): the stem network's bottleneck at a 32x48x32 patch first
    (128, (2, 3, 2)),
    (64, (2, 4, 4)),
    (128, (2, 32, 24)),
    (128, (2, 2, 2)),
    (128, (3, 3, 3)),
    (128, (4, 6, 4)),
    (128, (5, 7, 5)),
    (128, (4, 2, 2)),
]


def failures(conv: torch.nn.Module, channels: int, grid: tuple[int, ...], seconds: float) -> tuple[int, int]:
    calls = bad = 0
    x = torch.randn(2, channels, *grid)
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        conv.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = conv(x)
        y.backward(torch.randn_like(y))
        calls += 1
        bad += not bool(torch.isfinite(conv.weight.grad).all())
    return bad, calls


def op_failures(channels: int, grid: tuple[int, ...], seconds: float) -> tuple[int, int]:
    x = torch.randn(2, channels, *grid).bfloat16()
    w = (torch.randn(channels, channels, 3, 3, 3) * 0.05).bfloat16()
    y = torch.nn.functional.conv3d(x, w, padding=1)
    calls = bad = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, grad_w, _ = torch.ops.aten.convolution_backward(
            torch.randn_like(y), x, w, None, [1] * 3, [1] * 3, [1] * 3, False, [0] * 3, 1, [False, True, False]
        )
        calls += 1
        bad += not bool(torch.isfinite(grad_w).all())
    return bad, calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, {args.threads} threads, {args.seconds:g} s per cell: non-finite weight "
        f"gradients / calls"
    )
    print(f"{'channels':>8}  {'grid':<10} {'aten op':>12} {'nn.Conv3d':>12} {'seg Conv3d':>12}")
    for channels, grid in CASES:
        raw = torch.nn.Conv3d(channels, channels, 3, padding=1, bias=False)
        guarded = Conv3d(channels, channels, 3, padding=1, bias=False)
        guarded.load_state_dict(raw.state_dict())
        o = op_failures(channels, grid, args.seconds)
        r = failures(raw, channels, grid, args.seconds)
        g = failures(guarded, channels, grid, args.seconds)
        cells = " ".join(f"{f'{bad}/{calls}':>12}" for bad, calls in (o, r, g))
        print(f"{channels:>8}  {'x'.join(map(str, grid)):<10} {cells}", flush=True)


if __name__ == "__main__":
    main()
