"""SEAM's training loss (Wang et al., CVPR 2020; the terms of its official train_SEAM.py), for 2D and 3D:

    classification  multi-label soft margin of the pooled CAMs of both branches against the presence labels
    ER              L1 between the rescaled CAM of the patch and the CAM of the rescaled patch
    ECR             L1 between each branch's PCM output and the other branch's (one-hot of the) CAM, averaged over
                    the hardest `ecr_share` of voxels
    min pooling     the lowest `min_share` of each branch's PCM activations (of the classes present) pushed to 0

Both branches' maps are compared on the rescaled patch's grid, up-sampled from the CAM level (SEAM compares them
at image resolution). Presence labels (B, K - 1) are all the loss reads of the annotation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from seg.config import SeamConfig
from seg.models.layers import interp_mode
from seg.seam.network import SeamBranch, SeamNet, max_norm


@dataclass
class SeamTerms:
    total: torch.Tensor
    classification: torch.Tensor
    er: torch.Tensor
    ecr: torch.Tensor
    min_pool: torch.Tensor

    def logged(self) -> dict[str, torch.Tensor]:
        return {
            "train/cls": self.classification,
            "train/er": self.er,
            "train/ecr": self.ecr,
            "train/min_pool": self.min_pool,
        }


def rescale(x: torch.Tensor, scale: float, multiple) -> torch.Tensor:
    """The second branch's input: `x` resized by `scale`, each size rounded to a multiple of the network's."""
    size = [max(m, int(round(s * scale / m)) * m) for s, m in zip(x.shape[2:], multiple, strict=True)]
    return F.interpolate(x, size=size, mode=interp_mode(x.ndim - 2), align_corners=False)


def _fit(t: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(t, size=tuple(size), mode=interp_mode(t.ndim - 2), align_corners=False)


def _with_background(cams: torch.Tensor) -> torch.Tensor:
    """(B, K - 1, *s) normalised CAMs -> (B, K, *s) with background = 1 - max over classes."""
    return torch.cat([1 - cams.max(1, keepdim=True).values, cams], dim=1)


def _one_hot_max(cams: torch.Tensor) -> torch.Tensor:
    """SEAM's max_onehot: foreground values that are not the per-voxel maximum over classes set to 0."""
    fg = cams[:, 1:]
    fg = torch.where(fg < fg.max(1, keepdim=True).values, torch.zeros_like(fg), fg)
    return torch.cat([cams[:, :1], fg], dim=1)


def _hardest_mean(t: torch.Tensor, share: float) -> torch.Tensor:
    flat = t.flatten(1)
    k = max(1, int(flat.shape[1] * share))
    return flat.topk(k, dim=1).values.mean()


def _min_pool(refined_fg: torch.Tensor, share: float) -> torch.Tensor:
    """SEAM's adaptive min pooling: the lowest `share` of per-voxel maxima over classes, ReLU, mean."""
    top = refined_fg.max(1).values.flatten(1)  # (B, V)
    k = max(1, int(top.shape[1] * share))
    return F.relu(top.topk(k, dim=1, largest=False).values).mean()


class SeamLoss:
    def __init__(self, cfg: SeamConfig):
        self.cfg = cfg

    def ramp(self, progress: float) -> float:
        """Weight of the self-supervised terms at `progress` (share of the run done): 0 during `seam.warmup`, then
        linear up to 1 over as long again."""
        w = self.cfg.warmup
        return 1.0 if w <= 0 else min(max((progress - w) / w, 0.0), 1.0)

    def __call__(self, net: SeamNet, image: torch.Tensor, presence: torch.Tensor, progress: float = 1.0) -> SeamTerms:
        """image (B, C, *patch) with sizes multiples of `net.size_multiple`; presence (B, K - 1) in {0, 1};
        progress: share of the run done (for `seam.warmup`)."""
        c = self.cfg
        small = rescale(image, c.scale, net.size_multiple)
        b1, b2 = net.branch(image), net.branch(small)
        label = presence.float()  # (B, K - 1)
        label_bg = torch.cat([torch.ones_like(label[:, :1]), label], dim=1)  # (B, K)
        spread = (..., *[None] * (image.ndim - 2))
        cls = sum(F.multilabel_soft_margin_loss(net.class_scores(b.cam), label) for b in (b1, b2)) / 2
        min_pool = sum(_min_pool(b.refined[:, 1:] * label[spread], c.min_share) for b in (b1, b2)) / 2
        grid = small.shape[2:]  # both branches' maps on the rescaled patch's grid

        def normalised(b: SeamBranch) -> tuple[torch.Tensor, torch.Tensor]:
            cam = _fit(max_norm(b.cam.float()), grid) * label[spread]
            refined = _fit(max_norm(b.refined), grid) * label_bg[spread]
            return cam, refined

        cam1, rv1 = normalised(b1)
        cam2, rv2 = normalised(b2)
        er = (cam1 - cam2).abs().mean()
        target1, target2 = (_one_hot_max(_with_background(t).detach()) for t in (cam1, cam2))
        ecr = _hardest_mean((target2 - rv1).abs(), c.ecr_share) + _hardest_mean((target1 - rv2).abs(), c.ecr_share)
        ramp = self.ramp(progress)
        total = cls + ramp * (c.min_weight * min_pool + c.er_weight * er + c.ecr_weight * ecr)
        return SeamTerms(total, cls, er, ecr, min_pool)
