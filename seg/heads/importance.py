"""Importance of every head and every gate level on held-out cases, two ways (Michel et al. 2019):

- masking: the drop in mean Dice when one head is removed (its output times 0), or one gate level (its coefficients
  set to 1: the skip passes unweighted; and set to 0: the skip is blocked);
- the gradient proxy: I = E |dL/d xi| over windows of the cases, with xi = 1 a mask variable on each head's output
  (on each gate's coefficients for gate levels), L the training loss; one backward pass per window gives every
  head's. Michel et al. divide each layer's proxies by their L2 norm over the layer's heads; that is reported too,
  but heads are ranked (and pruned) by the proxy itself: a U-Net's layers differ in importance by orders of
  magnitude (a gate that passes its skip unchanged has heads whose proxies are 100x smaller than the finest
  gate's), and per-layer normalisation makes such a layer's heads look as important as any other's (on Task04,
  Spearman with the masking drops 0.97 for the proxy, 0.22 normalised per layer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from seg.heads.scoring import Scorer, spearman
from seg.models.heads import BLOCK, PASS, gate_levels, head_layers, masked


@dataclass
class HeadScore:
    layer: str  # gate_level0, self_enc3b0
    head: int
    dice_drop: float  # mean Dice with all heads minus with this one masked
    proxy: float  # E |dL/d xi_h|
    proxy_normalised: float  # divided by the layer's L2 norm


@dataclass
class GateScore:
    layer: str  # gate_level0
    drop_passed: float  # Dice drop with the gate removed (coefficients 1: the skip passes unweighted)
    drop_blocked: float  # Dice drop with the skip blocked (coefficients 0)
    proxy: float  # E |dL/d xi| with xi moving the coefficients towards 1
    proxy_normalised: float


@dataclass
class Importance:
    dice: float  # the unmasked model's mean Dice
    heads: list[HeadScore] = field(default_factory=list)
    gates: list[GateScore] = field(default_factory=list)

    @property
    def spearman_heads(self) -> float:
        """Rank correlation of the masking drops and the proxies over every head."""
        return spearman([h.dice_drop for h in self.heads], [h.proxy for h in self.heads])

    @property
    def spearman_heads_per_layer(self) -> float:
        """The same with Michel et al.'s per-layer normalised proxies."""
        return spearman([h.dice_drop for h in self.heads], [h.proxy_normalised for h in self.heads])

    @property
    def spearman_gates(self) -> float:
        return spearman([g.drop_passed for g in self.gates], [g.proxy for g in self.gates])


def gradient_proxy(
    net: nn.Module, scorer: Scorer, head_masks: Mapping[str, torch.Tensor] | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """(per head layer, E |dL/d xi| per head; per gate level, E |dL/d xi|) at the given masks (default all 1;
    masked heads stay masked and their entries are still measured)."""
    layers = {layer.name: layer.heads for layer in head_layers(net)}
    xi = {name: (head_masks or {}).get(name, torch.ones(n)).clone().requires_grad_(True) for name, n in layers.items()}
    gx = {name: torch.ones((), requires_grad=True) for name in gate_levels(net)}
    head_sum = {name: torch.zeros(n) for name, n in layers.items()}
    gate_sum = dict.fromkeys(gx, 0.0)
    trained = [p for p in net.parameters() if p.requires_grad]
    windows = 0
    try:
        for p in trained:
            p.requires_grad_(False)  # gradients with respect to the masks only
        with masked(net, xi, {name: (g, PASS) for name, g in gx.items()}):
            for image, label in scorer.windows(net.spatial_dims):
                loss = scorer.loss(net, image, label)
                grads = torch.autograd.grad(loss, [*xi.values(), *gx.values()], allow_unused=True)
                for name, g in zip(xi, grads[: len(xi)], strict=True):  # a multi-head gate is in both, by one name
                    head_sum[name] += 0.0 if g is None else g.detach().abs()
                for name, g in zip(gx, grads[len(xi) :], strict=True):
                    gate_sum[name] += 0.0 if g is None else float(g.abs())
                windows += 1
    finally:
        for p in trained:
            p.requires_grad_(True)
    n = max(windows, 1)
    return {k: v / n for k, v in head_sum.items()}, {k: v / n for k, v in gate_sum.items()}


def normalised(values: torch.Tensor) -> torch.Tensor:
    """Divided by the L2 norm (unchanged where the norm is 0)."""
    norm = values.norm()
    return values / norm if norm > 0 else values


def importance(net: nn.Module, scorer: Scorer, log=print) -> Importance:
    """Masking and gradient-proxy importance of every head and every gate level of `net` (in eval mode)."""
    net.eval()
    result = Importance(scorer.dice(net))
    log(f"mean Dice with every head and gate: {result.dice:.4f}")
    head_proxy, gate_proxy = gradient_proxy(net, scorer)
    for layer in head_layers(net):
        norm = normalised(head_proxy[layer.name])
        for h in range(layer.heads):
            xi = torch.ones(layer.heads)
            xi[h] = 0.0
            with masked(net, {layer.name: xi}):
                drop = result.dice - scorer.dice(net)
            result.heads.append(HeadScore(layer.name, h, drop, float(head_proxy[layer.name][h]), float(norm[h])))
            log(f"{layer.name} head {h}: Dice drop {drop:+.4f}, proxy {float(head_proxy[layer.name][h]):.3g}")
    names = list(gate_levels(net))
    gate_norm = normalised(torch.tensor([gate_proxy[n] for n in names])) if names else torch.zeros(0)
    for name, norm in zip(names, gate_norm.tolist(), strict=True):
        drops = []
        for fill in (PASS, BLOCK):
            with masked(net, gates={name: (torch.zeros(()), fill)}):
                drops.append(result.dice - scorer.dice(net))
        result.gates.append(GateScore(name, drops[0], drops[1], gate_proxy[name], norm))
        log(f"{name}: Dice drop removed {drops[0]:+.4f}, blocked {drops[1]:+.4f}, proxy {gate_proxy[name]:.3g}")
    return result
