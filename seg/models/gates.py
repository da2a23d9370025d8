"""Additive attention gates (Oktay et al. 2018, "Attention U-Net: Learning Where to Look for the Pancreas").

The gate scores each position of a skip connection `x` against the gating signal `g` from the coarser decoder
level. As in the authors' grid-attention code, the additive attention is computed on a sub-sampled grid
(`theta` is a strided convolution of kernel = stride = `sub_sample_factor`), which is where `g` already lives,
so gating costs little; the coefficients are then resampled to the skip's resolution, multiply the skip and go
through an output transform (1x1 convolution + norm).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from seg.config import GATE_MODES, did_you_mean
from seg.models import layers
from seg.models.maps import GATE, MapId, MapSource


class CoefficientTap(nn.Identity):
    """Named pass-through for a coefficient map, so hooks can read maps without the model knowing who reads."""


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
    ):
        super().__init__()
        if mode not in GATE_MODES:
            raise ValueError(
                f"Unknown gate mode {mode!r}; expected one of {GATE_MODES}.{did_you_mean(mode, GATE_MODES)}"
            )
        self.spatial_dims = spatial_dims
        self.mode = mode
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
        if self.mode == "concatenation_softmax":
            flat = score.flatten(2)
            alpha = torch.exp(flat - flat.amax(dim=2, keepdim=True)).view_as(score)  # softmax / its max
        else:
            alpha = torch.sigmoid(score)
        alpha = F.interpolate(alpha, size=x.shape[2:], mode=layers.interp_mode(self.spatial_dims))
        alpha = self.tap(alpha)  # (B, 1, *skip_spatial), in [0, 1]
        self.report(GATE, alpha, head=self.head_index)
        gated = x * (1.0 + alpha) if self.mode == "concatenation_residual" else x * alpha
        return self.out(gated), alpha


class MultiHeadAttentionGate(MapSource):
    """Several independent gates on one skip, their outputs combined by a 1x1 convolution (Oktay et al.'s
    multi-attention block). The returned coefficient map is the heads' mean; each head reports its own map."""

    def __init__(self, spatial_dims: int, in_channels: int, gating_channels: int, heads: int = 2, **gate_kwargs):
        super().__init__()
        if heads < 2:
            raise ValueError(f"MultiHeadAttentionGate needs heads >= 2, got heads={heads}; use AttentionGate for one.")
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

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outs, alphas = zip(*(head(x, g) for head in self.heads), strict=True)
        alpha = self.tap(torch.stack(alphas, dim=0).mean(dim=0))  # (B, 1, *skip_spatial)
        self.report(GATE, alpha)
        return self.combine(torch.cat(outs, dim=1)), alpha


def build_gate(
    spatial_dims: int, in_channels: int, gating_channels: int, heads: int = 1, **gate_kwargs
) -> AttentionGate | MultiHeadAttentionGate:
    if heads == 1:
        return AttentionGate(spatial_dims, in_channels, gating_channels, **gate_kwargs)
    return MultiHeadAttentionGate(spatial_dims, in_channels, gating_channels, heads=heads, **gate_kwargs)
