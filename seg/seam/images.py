"""SEAM's validation images for review in MLflow: per class, the classifier's CAM and its PCM refinement over the
image, with the class's ground-truth contour: the maps the pseudo masks come from."""

from __future__ import annotations

import numpy as np
import torch

from seg.pictures import centre_of_mass, crop_around, render_maps


@torch.no_grad()
def cam_images(
    net, image: torch.Tensor, label: torch.Tensor, presence: torch.Tensor, max_size, title: str, class_names
) -> dict[str, np.ndarray]:
    """{"cam_<class>": RGB image} for one case, rows the classifier's CAM and its PCM refinement (each
    max-normalised, shown for the classes the case holds)."""
    centre = centre_of_mass(label[0, 0].cpu().numpy())
    image, label = crop_around(image, label, centre, max_size)
    was_training = net.training
    net.eval()
    cam = net.scores(image, presence.to(image.device), refine=False)[0, 1:].float().cpu().numpy()
    pcm = net.scores(image, presence.to(image.device), refine=True)[0, 1:].float().cpu().numpy()
    net.train(was_training)
    grey = image[0, 0].float().cpu().numpy()
    return {
        f"cam_{name}": render_maps(
            grey, [(f"CAM {name}", cam[k]), (f"PCM {name}", pcm[k])], label[0, 0].cpu().numpy() == k + 1, title
        )
        for k, name in enumerate(class_names)
    }
