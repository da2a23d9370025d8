"""Additive attention gates (Oktay et al. 2018, "Attention U-Net: Learning Where to Look for the Pancreas").

The gate scores each position of a skip connection `x` against the gating signal `g` from the coarser decoder
level. As in the authors' grid-attention code, the additive attention is computed on a sub-sampled grid
(`theta` is a strided convolution of kernel = stride = `sub_sample_factor`), which is where `g` already lives,
so gating costs little; the coefficients are then resampled to the skip's resolution, multiply the skip and go
through an output transform (1x1 convolution + norm).

Coefficients are soft (in [0, 1]) or hard: 0 or 1 in the forward pass, with the soft coefficients' gradient
(straight-through); "gumbel" takes the decision on a Gumbel-sigmoid sample while training, so a gate that is off
still opens now and then and gets a gradient, its temperature annealed from 1 to 0.1 over the run (`anneal`).
At inference both are the deterministic threshold at 0.5. A soft gate can be hardened at inference too
(`threshold`). For importance and pruning (`seg.models.heads`), a gate takes a mask: `gate_mask` (xi, fill) moves its
multiplier towards `fill` (1: the skip passes unweighted, 0: the skip is blocked) as xi goes from 1 to 0, and a
multi-head gate's `head_mask` (one xi per head) scales each head's output.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from seg.config import GATE_COEFFICIENTS, GATE_MODES, did_you_mean
from seg.models import layers
from seg.models.maps import GATE, MapId, MapSource


class CoefficientTap(nn.Identity):
    """Named pass-through for a coefficient map, so hooks can read maps without the model knowing who reads."""


TAU_START, TAU_END = 1.0, 0.1  # Gumbel-sigmoid temperature at the start and the end of training


def gumbel_sigmoid_logits(score: torch.Tensor, tau: float) -> torch.Tensor:
    """(score + g1 - g2) / tau with g1, g2 Gumbel: its sigmoid is a relaxed Bernoulli sample (Gumbel-sigmoid)."""
    u = torch.rand_like(score).clamp_(1e-6, 1 - 1e-6)
    return (score + torch.log(u) - torch.log1p(-u)) / tau  # the difference of two Gumbel variables is logistic


def straight_through(alpha: torch.Tensor) -> torch.Tensor:
    """0 or 1 (alpha > 0.5) in the forward pass, the gradient of alpha in the backward pass."""
    hard = (alpha > 0.5).to(alpha.dtype)
    return hard + (alpha - alpha.detach())  # exactly 0 or 1: the bracket is 0 in value


class AttentionGate(MapSource):
    """One additive attention gate on a skip connection.

    Modes:
      - "concatenation": sigmoid coefficients in [0, 1] (the paper's default).
      - "concatenation_softmax": coefficients normalised over space (softmax), rescaled so the largest is 1:
        the gate competes for a fixed attention budget, which sharpens maps.
      - "concatenation_residual": sigmoid coefficients, but the skip is kept and re-weighted by (1 + alpha),
        so a gate that has not learned yet cannot block the skip (helps early training).

    Returns (gated skip, coefficients at the skip's resolution, shape (B, 1, *skip_spatial)).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        gating_channels: int,
        inter_channels: int | None = None,
        sub_sample_factor: int | Sequence[int] = 2,
        mode: str = "concatenation",
        norm: str = "instance",
        coefficients: str = "soft",
    ):
        super().__init__()
        if mode not in GATE_MODES:
            raise ValueError(
                f"Unknown gate mode {mode!r}; expected one of {GATE_MODES}.{did_you_mean(mode, GATE_MODES)}"
            )
        if coefficients not in GATE_COEFFICIENTS:
            raise ValueError(f"Unknown gate coefficients {coefficients!r}; expected one of {GATE_COEFFICIENTS}.")
        self.spatial_dims = spatial_dims
        self.mode = mode
        self.coefficients = coefficients
        self.tau = TAU_START
        self.threshold: float | None = None  # hardening a soft gate at inference: 1 where alpha > threshold, else 0
        self.gate_mask: tuple[torch.Tensor, float] | None = None  # (xi, fill), see the module's docstring
        inter = inter_channels or max(in_channels // 2, 1)
        factor = layers.per_axis(sub_sample_factor, spatial_dims)
        conv = layers.conv(spatial_dims)
        self.theta = conv(in_channels, inter, factor, stride=factor, bias=False)  # x -> coarse grid
        self.phi = conv(gating_channels, inter, 1, bias=True)  # g -> same space
        self.psi = conv(inter, 1, 1, bias=True)  # additive attention -> one score per position
        self.out = nn.Sequential(
            conv(in_channels, in_channels, 1, bias=False), layers.norm(spatial_dims, norm, in_channels)
        )
        self.tap = CoefficientTap()
        self.head_index: int | None = None  # set by a multi-head gate on its heads

    def produces(self) -> list[MapId]:
        return [MapId(GATE, self.site, self.head_index)]

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        theta_x = self.theta(x)  # (B, inter, *coarse)
        phi_g = self.phi(g)
        if phi_g.shape[2:] != theta_x.shape[2:]:
            phi_g = F.interpolate(phi_g, size=theta_x.shape[2:], mode=layers.interp_mode(self.spatial_dims))
        score = self.psi(F.relu(theta_x + phi_g))  # (B, 1, *coarse)
        if self.coefficients == "gumbel" and self.training:
            score = gumbel_sigmoid_logits(score, self.tau)
        if self.mode == "concatenation_softmax":
            flat = score.flatten(2)
            alpha = torch.exp(flat - flat.amax(dim=2, keepdim=True)).view_as(score)  # softmax / its max
        else:
            alpha = torch.sigmoid(score)
        alpha = F.interpolate(alpha, size=x.shape[2:], mode=layers.interp_mode(self.spatial_dims))
        if self.coefficients != "soft":
            alpha = straight_through(alpha)
        elif self.threshold is not None:
            alpha = (alpha > self.threshold).to(alpha.dtype)
        alpha = self.tap(alpha)  # (B, 1, *skip_spatial), in [0, 1]
        self.report(GATE, alpha, head=self.head_index)
        return self.out(x * self._multiplier(alpha)), alpha

    def _multiplier(self, alpha: torch.Tensor) -> torch.Tensor:
        """What the skip is multiplied by: alpha, or 1 + alpha for the residual mode; under a gate mask, moved
        towards the mask's fill."""
        m = 1.0 + alpha if self.mode == "concatenation_residual" else alpha
        if self.gate_mask is not None:
            xi, fill = self.gate_mask
            m = xi * m + (1.0 - xi) * fill
        return m

    def anneal(self, progress: float) -> None:
        """Set the Gumbel temperature for training progress in [0, 1]: geometric from TAU_START to TAU_END."""
        t = min(max(progress, 0.0), 1.0)
        self.tau = TAU_START * (TAU_END / TAU_START) ** t


class MultiHeadAttentionGate(MapSource):
    """Several independent gates on one skip, their outputs combined by a 1x1 convolution (Oktay et al.'s
    multi-attention block). The returned coefficient map is the heads' mean; each head reports its own map.
    One head is allowed only where pruning left one (`build_gate` makes a single gate an `AttentionGate`)."""

    def __init__(self, spatial_dims: int, in_channels: int, gating_channels: int, heads: int = 2, **gate_kwargs):
        super().__init__()
        if heads < 1:
            raise ValueError(f"MultiHeadAttentionGate needs heads >= 1, got heads={heads}.")
        self.head_mask: torch.Tensor | None = None  # (heads,): each head's output scaled by its entry
        norm = gate_kwargs.get("norm", "instance")
        self.heads = nn.ModuleList(
            AttentionGate(spatial_dims, in_channels, gating_channels, **gate_kwargs) for _ in range(heads)
        )
        self.combine = nn.Sequential(
            layers.conv(spatial_dims)(heads * in_channels, in_channels, 1, bias=False),
            layers.norm(spatial_dims, norm, in_channels),
            nn.ReLU(inplace=True),
        )
        self.tap = CoefficientTap()

    def place(self, site: str, factor) -> None:
        super().place(site, factor)
        for h, head in enumerate(self.heads):
            head.place(site, factor)
            head.head_index = h

    def produces(self) -> list[MapId]:
        return [MapId(GATE, self.site)] + [m for head in self.heads for m in head.produces()]

    @property
    def gate_mask(self) -> tuple[torch.Tensor, float] | None:
        return self.heads[0].gate_mask

    @gate_mask.setter
    def gate_mask(self, mask: tuple[torch.Tensor, float] | None) -> None:
        for head in self.heads:  # the gate as a whole: every head's coefficients move together
            head.gate_mask = mask

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outs, alphas = zip(*(head(x, g) for head in self.heads), strict=True)
        if self.head_mask is not None:
            outs = [out * xi for out, xi in zip(outs, self.head_mask.to(outs[0].dtype), strict=True)]
        alpha = self.tap(torch.stack(alphas, dim=0).mean(dim=0))  # (B, 1, *skip_spatial)
        self.report(GATE, alpha)
        return self.combine(torch.cat(outs, dim=1)), alpha


def build_gate(
    spatial_dims: int, in_channels: int, gating_channels: int, heads: int = 1, kept: int | None = None, **gate_kwargs
) -> AttentionGate | MultiHeadAttentionGate:
    """One gate, or a multi-head gate of `heads` heads (of which `kept` remain after pruning)."""
    if heads == 1:
        return AttentionGate(spatial_dims, in_channels, gating_channels, **gate_kwargs)
    return MultiHeadAttentionGate(spatial_dims, in_channels, gating_channels, heads=kept or heads, **gate_kwargs)


def anneal_gates(net: nn.Module, progress: float) -> None:
    """Set every Gumbel gate's temperature for training progress in [0, 1] (a no-op without such gates)."""
    for m in net.modules():
        if isinstance(m, AttentionGate) and m.coefficients == "gumbel":
            m.anneal(progress)
