"""Gate-map images for review in MLflow: for a fixed validation case, one image per gate level, with slices
through the structure (image in grey, gate coefficients as a heat map, ground-truth contour)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from seg.models.layers import interp_mode
from seg.pictures import centre_of_mass, crop_around, render_maps


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
