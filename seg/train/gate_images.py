"""Gate-map images for review in MLflow: for a fixed validation case, one image per gate level, with slices
through the structure (image in grey, gate coefficients as a heat map, ground-truth contour)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from seg.models.layers import interp_mode
from seg.pictures import centre_of_mass, render_maps


def crop_around(image: torch.Tensor, label: torch.Tensor, centre, size) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop (1, C, *spatial) tensors to at most `size` around `centre` (bounded cost for large volumes)."""
    sl = [slice(None), slice(None)]
    for c, s, d in zip(centre, size, image.shape[2:]):
        s = min(s, d)
        lo = int(np.clip(c - s // 2, 0, d - s))
        sl.append(slice(lo, lo + s))
    return image[tuple(sl)], label[tuple(sl)]


@torch.no_grad()
def gate_images(net, image: torch.Tensor, label: torch.Tensor, max_size, title: str) -> dict[str, np.ndarray]:
    """{level name: RGB image} for one case; image (1, C, *spatial), label (1, 1, *spatial)."""
    centre = centre_of_mass(label[0, 0].cpu().numpy())
    image, label = crop_around(image, label, centre, max_size)
    was_training = net.training
    net.eval()
    out = net.outputs(image, gates=True, deep_supervision=False)
    net.train(was_training)
    pictures = {}
    for name, alpha in out.gates.items():
        heat = F.interpolate(alpha.float(), size=image.shape[2:], mode=interp_mode(image.ndim - 2))[0, 0].cpu().numpy()
        rows = [(f"gate {name}", heat)]
        pictures[name] = render_maps(image[0, 0].float().cpu().numpy(), rows, label[0, 0].cpu().numpy(), title)
    return pictures


@torch.no_grad()
def cam_images(net, image: torch.Tensor, label: torch.Tensor, presence: torch.Tensor, max_size, title: str,
               class_names) -> dict[str, np.ndarray]:
    """SEAM training: {"cam_<class>": RGB image} for one case, rows the classifier's CAM and its PCM refinement
    (each max-normalised, shown for the classes the case holds: the maps training's pseudo masks come from)."""
    centre = centre_of_mass(label[0, 0].cpu().numpy())
    image, label = crop_around(image, label, centre, max_size)
    was_training = net.training
    net.eval()
    cam = net.scores(image, presence.to(image.device), refine=False)[0, 1:].float().cpu().numpy()
    pcm = net.scores(image, presence.to(image.device), refine=True)[0, 1:].float().cpu().numpy()
    net.train(was_training)
    grey = image[0, 0].float().cpu().numpy()
    return {f"cam_{name}": render_maps(grey, [(f"CAM {name}", cam[k]), (f"PCM {name}", pcm[k])],
                                       label[0, 0].cpu().numpy() == k + 1, title)
            for k, name in enumerate(class_names)}
