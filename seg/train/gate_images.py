"""Gate-map images for review in MLflow: for a fixed validation case, one image per gate level, with slices
through the structure (image in grey, gate coefficients as a heat map, ground-truth contour)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def centre_of_mass(label: np.ndarray) -> tuple[int, ...]:
    """Voxel index of the foreground's centre (the volume's centre when there is no foreground)."""
    fg = np.argwhere(label > 0)
    return tuple(int(v) for v in (fg.mean(0) if len(fg) else np.array(label.shape) / 2))


def crop_around(image: torch.Tensor, label: torch.Tensor, centre, size) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop (1, C, *spatial) tensors to at most `size` around `centre` (bounded cost for large volumes)."""
    sl = [slice(None), slice(None)]
    for c, s, d in zip(centre, size, image.shape[2:]):
        s = min(s, d)
        lo = int(np.clip(c - s // 2, 0, d - s))
        sl.append(slice(lo, lo + s))
    return image[tuple(sl)], label[tuple(sl)]


def render_overlay(image: np.ndarray, heat: np.ndarray, label: np.ndarray, title: str) -> np.ndarray:
    """RGB uint8 picture: for 3D three orthogonal slices through the structure, for 2D the image itself.

    image, heat, label: arrays of the same spatial shape (2D or 3D); heat in [0, 1].
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centre = centre_of_mass(label)
    if image.ndim == 2:
        views = [(image, heat, label, "")]
    else:
        views = [
            (np.take(image, centre[a], a), np.take(heat, centre[a], a), np.take(label, centre[a], a), f"axis {a}")
            for a in range(3)
        ]
    fig, axes = plt.subplots(1, len(views), figsize=(3.2 * len(views), 3.4), dpi=100, squeeze=False)
    lo, hi = np.percentile(image, [1, 99])
    for ax, (im, ht, lb, name) in zip(axes[0], views):
        ax.imshow(im.T, cmap="gray", origin="lower", vmin=lo, vmax=hi)
        ax.imshow(ht.T, cmap="jet", origin="lower", vmin=0, vmax=1, alpha=0.45)
        if lb.any():
            ax.contour(lb.T > 0, levels=[0.5], colors="white", linewidths=0.8, origin="lower")
        ax.set_title(name, fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return rgb


@torch.no_grad()
def gate_images(net, image: torch.Tensor, label: torch.Tensor, max_size, title: str) -> dict[str, np.ndarray]:
    """{level name: RGB image} for one case; image (1, C, *spatial), label (1, 1, *spatial)."""
    centre = centre_of_mass(label[0, 0].cpu().numpy())
    image, label = crop_around(image, label, centre, max_size)
    was_training = net.training
    net.eval()
    out = net.outputs(image, gates=True, deep_supervision=False)
    net.train(was_training)
    mode = "bilinear" if image.ndim == 4 else "trilinear"
    pictures = {}
    for name, alpha in out.gates.items():
        heat = F.interpolate(alpha.float(), size=image.shape[2:], mode=mode)[0, 0].cpu().numpy()
        pictures[name] = render_overlay(
            image[0, 0].float().cpu().numpy(), heat, label[0, 0].cpu().numpy(), f"{title} gate {name}"
        )
    return pictures
