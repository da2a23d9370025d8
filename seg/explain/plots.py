"""The analysis's plots beside the map overlays (`seg.pictures`): channel weights as bars, one row per site, and
self-attention distance by depth, one line per head. RGB uint8 arrays, like every picture of the analysis."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _rgb(fig) -> np.ndarray:
    plt = _pyplot()
    fig.tight_layout()
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return rgb


def render_channels(rows: Sequence[tuple[str, np.ndarray]], title: str) -> np.ndarray:
    """Bars of each site's channel weights (name, (C,)), one row per site."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(rows), 1, figsize=(6.0, 1.4 * len(rows) + 0.6), dpi=80, squeeze=False)
    for ax, (name, weights) in zip(axes[:, 0], rows, strict=True):
        ax.bar(np.arange(len(weights)), weights, width=0.9, color="tab:blue")
        ax.set_ylim(0, max(1.0, float(np.max(weights))))
        ax.set_ylabel("weight", fontsize=7)
        ax.set_title(f"{name} ({len(weights)} channels)", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[-1, 0].set_xlabel("channel", fontsize=7)
    fig.suptitle(title, fontsize=9)
    return _rgb(fig)


def render_distance_by_depth(sites: Sequence[str], by_head: Mapping[str, Sequence[float | None]]) -> np.ndarray:
    """Attention distance (mm) per site, sites in depth order on the x axis, a line per head (None: no value)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 3.2), dpi=80)
    x = np.arange(len(sites))
    for head, values in by_head.items():
        y = np.array([np.nan if v is None else v for v in values], dtype=float)
        ax.plot(x, y, marker="o", label=head)
    ax.set_xticks(x, list(sites), fontsize=7)
    ax.set_xlabel("self-attention block, shallow to deep")
    ax.set_ylabel("attention distance (mm)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Attention distance by depth (mean over queries and cases)", fontsize=9)
    return _rgb(fig)
