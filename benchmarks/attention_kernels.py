"""PyTorch's fused attention kernel against plain matrix products, on the shapes seg's self-attention meets: the
evidence for `seg.models.attention_ops.attend`'s choice. One table: forward + backward (training) and forward
only, float32 and bf16 autocast, with and without a key mask, per shape (batch x windows, heads, keys, channels
per head). Run it once as it is and once with `ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2` (an AVX2-only CPU).

    python benchmarks/attention_kernels.py [--threads 2] [--steps 5]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from seg.models.attention_ops import plain_attention
from seg.runtime.machine import describe_machine

SHAPES = [(64, 4, 64, 8), (4, 4, 16, 32), (4, 4, 512, 32)]  # (batch x windows, heads, keys, channels per head)


def timed(fn, steps: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps * 1000


def case(shape, bf16: bool, masked: bool, train: bool, steps: int) -> tuple[float, float]:
    b, h, n, d = shape
    q, k, v = (torch.randn(b, h, n, d, requires_grad=train) for _ in range(3))
    mask = torch.rand(q.shape[0], n) > 0.1 if masked else None

    def fused():
        m = None if mask is None else mask[:, None, None, :]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m)

    def run(kernel):
        def step():
            with torch.set_grad_enabled(train), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = kernel()
            if train:
                out.float().sum().backward()

        return timed(step, steps)

    return run(fused), run(lambda: plain_attention(q, k, v, mask))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {describe_machine().line()}, threads {args.threads}")
    print(f"{'batch x windows, heads, keys, d':32} {'dtype':9} {'mask':5} {'pass':8} {'fused ms':>9} {'plain ms':>9}")
    for shape in SHAPES:
        for bf16 in (False, True):
            for masked in (False, True):
                for train in (True, False):
                    fused, plain = case(shape, bf16, masked, train, args.steps)
                    label = ", ".join(map(str, shape))
                    dtype, kind = ("bf16" if bf16 else "float32"), ("train" if train else "forward")
                    print(f"{label:32} {dtype:9} {'yes' if masked else 'no':5} {kind:8} {fused:9.1f} {plain:9.1f}")


if __name__ == "__main__":
    main()
