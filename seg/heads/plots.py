"""The pictures of `seg heads`: the importance heat maps (layer x head), gate levels, the pruning curve and the
hardening curve. RGB uint8 arrays, like every picture seg writes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seg.explain.plots import _pyplot, _rgb
from seg.heads.hardening import HardeningPoint
from seg.heads.importance import Importance
from seg.heads.pruning import PruningStep


def render_heat_maps(result: Importance) -> np.ndarray | None:
    """Two panels, layer x head: the Dice drop when the head is masked, and the gradient proxy."""
    if not result.heads:
        return None
    layers = list(dict.fromkeys(h.layer for h in result.heads))
    width = max(h.head for h in result.heads) + 1
    drop, proxy = np.full((len(layers), width), np.nan), np.full((len(layers), width), np.nan)
    for h in result.heads:
        drop[layers.index(h.layer), h.head] = h.dice_drop
        proxy[layers.index(h.layer), h.head] = h.proxy
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(3.0 + 1.2 * width, 1.2 + 0.45 * len(layers)), dpi=90)
    for ax, values, title, cmap in (
        (axes[0], drop, "Dice drop when masked", "Reds"),
        (axes[1], proxy, "gradient proxy E|dL/dxi|", "Blues"),
    ):
        image = ax.imshow(values, cmap=cmap, aspect="auto")
        for (r, c), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(c, r, f"{v:.2g}", ha="center", va="center", fontsize=7, color=_ink(image, v))
        ax.set_xticks(range(width), [f"h{i}" for i in range(width)], fontsize=7)
        ax.set_yticks(range(len(layers)), layers, fontsize=7)
        ax.set_title(title, fontsize=8)
        fig.colorbar(image, ax=ax, fraction=0.05)
    return _rgb(fig)


def _ink(image, value: float) -> str:
    """Black on light cells, white on dark ones."""
    lo, hi = image.get_clim()
    return "white" if hi > lo and (value - lo) / (hi - lo) > 0.6 else "black"


def render_gates(result: Importance) -> np.ndarray | None:
    """Bars per gate level: the Dice drop with the gate removed (skip passed unweighted) and with the skip blocked."""
    if not result.gates:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.5 + 1.2 * len(result.gates), 2.6), dpi=90)
    x = np.arange(len(result.gates))
    ax.bar(x - 0.2, [g.drop_passed for g in result.gates], 0.4, label="gate removed (skip passed)")
    ax.bar(x + 0.2, [g.drop_blocked for g in result.gates], 0.4, label="skip blocked")
    ax.set_xticks(x, [g.layer for g in result.gates], fontsize=7)
    ax.set_ylabel("Dice drop", fontsize=8)
    ax.axhline(0, color="black", lw=0.5)
    ax.legend(fontsize=7)
    return _rgb(fig)


def render_pruning(steps: Sequence[PruningStep]) -> np.ndarray | None:
    if len(steps) < 2:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 2.8), dpi=90)
    ax.plot([100 * s.share_kept for s in steps], [s.dice for s in steps], "o-")
    ax.set_xlabel("heads kept (%)", fontsize=8)
    ax.set_ylabel("mean Dice", fontsize=8)
    ax.invert_xaxis()
    ax.set_title("pruning by the gradient proxy, 10% of heads a step", fontsize=8)
    return _rgb(fig)


def render_hardening(points: Sequence[HardeningPoint]) -> np.ndarray | None:
    if len(points) < 2:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 2.8), dpi=90)
    hard = [p for p in points if p.threshold is not None]
    ax.plot([100 * p.zero_share for p in hard], [p.dice for p in hard], "o-", label="thresholded")
    for p in hard:
        ax.annotate(f"{p.threshold:.1f}", (100 * p.zero_share, p.dice), fontsize=6)
    soft = points[0]
    ax.axhline(soft.dice, color="gray", ls="--", lw=0.8, label="as trained (soft)")
    ax.set_xlabel("gated positions set to 0 (%)", fontsize=8)
    ax.set_ylabel("mean Dice", fontsize=8)
    ax.legend(fontsize=7)
    ax.set_title("hardening the gates at inference", fontsize=8)
    return _rgb(fig)
