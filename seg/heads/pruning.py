"""Pruning heads step by step (Michel et al. 2019): mask the least important heads by the gradient proxy (compared
across layers as it is, see `seg.heads.importance`), 10% of all heads at a time, re-estimate, and score what is
left; every layer keeps at least one head. The mask that
reaches a share of heads becomes a real, smaller network with `seg.models.heads.prune`."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from seg.heads.importance import gradient_proxy
from seg.heads.scoring import Scorer
from seg.models.heads import head_layers, masked

STEP = 0.1  # share of all heads masked per step


@dataclass
class PruningStep:
    heads_kept: int
    share_kept: float
    dice: float
    kept: dict[str, list[int]]  # per layer, the heads still there (indices of the trained network)


def prune_by_proxy(net: nn.Module, scorer: Scorer, keep: float = 0.0, log=print) -> list[PruningStep]:
    """Steps from every head to `keep` (a share of all heads; 0: down to one head per layer), each scored."""
    layers = {layer.name: layer.heads for layer in head_layers(net)}
    total = sum(layers.values())
    if not total:
        raise ValueError("the network has no multi-head layer: nothing to prune (see `seg model` for its layers)")
    target = max(math.ceil(keep * total - 1e-9), len(layers))
    masks = {name: torch.ones(n) for name, n in layers.items()}
    net.eval()
    steps = [_step(net, scorer, masks, total)]
    log(f"{total} heads: mean Dice {steps[0].dice:.4f}")
    while steps[-1].heads_kept > target:
        count = min(max(round(STEP * total), 1), steps[-1].heads_kept - target)
        proxy, _ = gradient_proxy(net, scorer, masks)
        for name, head in _least_important(proxy, masks, count):
            masks[name][head] = 0.0
        steps.append(_step(net, scorer, masks, total))
        log(f"{steps[-1].heads_kept} heads ({steps[-1].share_kept:.0%}): mean Dice {steps[-1].dice:.4f}")
    return steps


def _least_important(proxy: dict[str, torch.Tensor], masks: dict[str, torch.Tensor], count: int):
    """The `count` unmasked heads of lowest proxy, never a layer's last one."""
    candidates = []
    for name, xi in masks.items():
        alive = xi.nonzero().flatten().tolist()
        candidates += [(float(proxy[name][h]), name, h) for h in alive]
    left = {name: int(xi.sum()) for name, xi in masks.items()}
    chosen = []
    for _, name, h in sorted(candidates):
        if len(chosen) == count:
            break
        if left[name] > 1:
            chosen.append((name, h))
            left[name] -= 1
    return chosen


def _step(net: nn.Module, scorer: Scorer, masks: dict[str, torch.Tensor], total: int) -> PruningStep:
    with masked(net, masks):
        dice = scorer.dice(net)
    kept = {name: xi.nonzero().flatten().tolist() for name, xi in masks.items()}
    n = sum(len(v) for v in kept.values())
    return PruningStep(n, n / total, dice, kept)


@torch.no_grad()
def forward_ms(net: nn.Module, shape: tuple[int, ...], repeats: int = 10) -> float:
    """Median wall time (ms) of one forward pass on a (shape) input in float32, after two warm-up passes."""
    x = torch.randn(shape)
    net.eval()
    for _ in range(2):
        net(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        net(x)
        times.append(time.perf_counter() - t)
    return 1000 * sorted(times)[len(times) // 2]
