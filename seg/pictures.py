"""Pictures for review, the one renderer of training's gate-map images and the analysis's overlays: maps over the
image (rows: maps; columns: three orthogonal slices through the structure in 3D, the image itself in 2D), with the
reference contour, and Dice-over-threshold curves. RGB uint8 arrays, ready for PNG files and MLflow's image
viewer. Imports nothing of seg."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def centre_of_mass(label: np.ndarray) -> tuple[int, ...]:
    """Voxel index of the foreground's centre (the volume's centre when there is no foreground)."""
    fg = np.argwhere(label > 0)
    return tuple(int(v) for v in (fg.mean(0) if len(fg) else np.array(label.shape) / 2))


def crop_around(image, label, centre, size):
    """Crop (1, C, *spatial) arrays or tensors to at most `size` around `centre` (bounded cost for large volumes)."""
    sl = [slice(None), slice(None)]
    for c, s, d in zip(centre, size, image.shape[2:], strict=True):
        s = min(s, d)
        lo = int(np.clip(c - s // 2, 0, d - s))
        sl.append(slice(lo, lo + s))
    return image[tuple(sl)], label[tuple(sl)]


def _figure_rgb(fig) -> np.ndarray:
    import matplotlib.pyplot as plt

    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return rgb


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def render_maps(image: np.ndarray, maps: Sequence[tuple[str, np.ndarray]], mask: np.ndarray, title: str) -> np.ndarray:
    """RGB picture of `maps` (name, heat (*S) in [0, 1]) over `image` (*S) with `mask`'s contour; slices through
    the centre of `mask` (of the volume when the mask is empty)."""
    plt = _pyplot()
    centre = centre_of_mass(mask)
    cut = (lambda a, axis: a) if image.ndim == 2 else (lambda a, axis: np.take(a, centre[axis], axis))
    axes_list = [0] if image.ndim == 2 else [0, 1, 2]
    size = (max(2.6 * len(axes_list), 4.0), 2.6 * len(maps) + 0.4)  # inches; one 2D column still fits its title
    fig, axes = plt.subplots(len(maps), len(axes_list), figsize=size, dpi=80, squeeze=False)
    lo, hi = np.percentile(image, [1, 99])
    for row, (name, heat) in enumerate(maps):
        for col, axis in enumerate(axes_list):
            ax = axes[row, col]
            ax.imshow(cut(image, axis).T, cmap="gray", origin="lower", vmin=lo, vmax=hi)
            ax.imshow(cut(heat, axis).T, cmap="jet", origin="lower", vmin=0, vmax=1, alpha=0.45)
            lb = cut(mask, axis)
            if lb.any():
                ax.contour(lb.T > 0, levels=[0.5], colors="white", linewidths=0.8, origin="lower")
            label = name if image.ndim == 2 else f"{name}, axis {axis} = {centre[axis]}"
            ax.set_title(label, fontsize=7)
            ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _figure_rgb(fig)


def render_curves(
    thresholds: Sequence[float], curves: Mapping[str, np.ndarray], chosen: Mapping[str, float], title: str
) -> np.ndarray:
    """RGB line plot of mean Dice over thresholds, one line per name, with each chosen threshold marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 3.2), dpi=80)
    for name, curve in curves.items():
        line = ax.plot(thresholds, curve, label=name)[0]
        if name in chosen:
            ax.axvline(chosen[name], color=line.get_color(), linestyle=":", linewidth=1)
    ax.set_xlabel("threshold on the min-max normalised map")
    ax.set_ylabel("Dice")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _figure_rgb(fig)
