"""Hardening soft gates at inference: every gate's coefficients thresholded to 0 or 1, and what that costs (mean
Dice) and could save (the share of skip positions a gate sets to 0, and the computation those positions need).

What a zero saves: the gated skip x * alpha is 0 there, so the gate's output convolution (1x1, C -> C, no bias)
need not run at those positions: 2 C^2 FLOPs each. Nothing else in the U can skip them (the decoder's
convolutions also read the up-sampled coarser features there). A dense CPU kernel computes zeros as fast as any
other value, so unless the output convolution is run on the kept positions only, the time is unchanged."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from seg.heads.scoring import Scorer
from seg.models.gates import AttentionGate

THRESHOLDS = (0.1, 0.3, 0.5, 0.7, 0.9)


@dataclass
class HardeningPoint:
    threshold: float | None  # None: the model as trained
    dice: float
    zero_share: float  # share of gated skip positions (over gates and cases) whose coefficient is 0
    flops_skippable: float  # per window (training patch), FLOPs the zero positions would not need
    flops_share: float  # that, as a share of the network's FLOPs per window


@contextmanager
def hardened(net: nn.Module, threshold: float | None) -> Iterator[None]:
    gates = [m for m in net.modules() if isinstance(m, AttentionGate)]
    try:
        for g in gates:
            g.threshold = threshold
        yield
    finally:
        for g in gates:
            g.threshold = None


class ZeroCounter:
    """Counts, through the gates' coefficient taps, how many gated positions are 0 and the output-convolution
    FLOPs they stand for."""

    def __init__(self, net: nn.Module):
        self.zeros = self.total = self.windows = 0
        self.flops = 0.0
        gates = [g for g in net.modules() if isinstance(g, AttentionGate)]
        self.gates = len(gates)
        self.hooks = [g.tap.register_forward_hook(self._hook(g)) for g in gates]

    @property
    def flops_per_window(self) -> float:
        return self.flops * self.gates / max(self.windows, 1)

    def _hook(self, gate: AttentionGate):
        channels = gate.out[0].in_channels

        def count(_module, _inputs, alpha: torch.Tensor) -> None:
            zeros = int((alpha == 0).sum())
            self.zeros += zeros
            self.total += alpha.numel()
            self.windows += alpha.shape[0]
            self.flops += 2.0 * channels * channels * zeros

        return count

    def remove(self) -> None:
        for h in self.hooks:
            h.remove()


def hardening_curve(
    net: nn.Module, scorer: Scorer, thresholds: Sequence[float] = THRESHOLDS, log=print
) -> list[HardeningPoint]:
    """The model as trained, then every soft gate thresholded at each of `thresholds`: mean Dice and zeros (hard
    gates are 0 or 1 already: only their point)."""
    gates = [m for m in net.modules() if isinstance(m, AttentionGate)]
    if not gates:
        return []
    if all(g.coefficients != "soft" for g in gates):
        thresholds = ()
    per_window = forward_flops(net, (1, scorer.cases[0].image.shape[1], *scorer.patch[-net.spatial_dims :]))
    points = []
    for t in (None, *thresholds):
        counter = ZeroCounter(net)
        try:
            with hardened(net, t):
                dice = scorer.dice(net)
        finally:
            counter.remove()
        share = counter.zeros / max(counter.total, 1)
        skippable = counter.flops_per_window
        points.append(HardeningPoint(t, dice, share, skippable, skippable / per_window))
        label = "as trained" if t is None else f"threshold {t:.1f}"
        log(f"gates {label}: mean Dice {dice:.4f}, {share:.1%} of gated positions 0")
    return points


@torch.no_grad()
def forward_flops(net: nn.Module, shape: Sequence[int]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        net(torch.zeros(tuple(shape)))
    return float(counter.get_total_flops())
