"""Class activation maps from activations A (B, C, *spatial) and the gradients G of a class score, one code path
for 2D and 3D (reductions run over `range(2, ndim)`):

- Grad-CAM (Selvaraju et al. 2017): ReLU(sum_c w_c A_c), w_c = mean over space of G_c.
- Grad-CAM++ (Chattopadhay et al. 2018): w_c = sum over space of a_c * ReLU(G_c), a_c = G^2 / (2 G^2 + sum(A_c) G^3)
  (the closed form for an exponential score, as in the paper and pytorch-grad-cam).
- HiResCAM (Draelos & Carin 2020): ReLU(sum_c G_c * A_c), element-wise, so it shows what the score used.
- CAM (Zhou et al. 2016), for a 1x1-convolution head on features F: ReLU(sum_c W_kc F_c) per class k.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-7


def _spatial(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(range(2, t.ndim))


def gradcam(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """(B, C, *s) activations and gradients -> (B, 1, *s) map >= 0."""
    weights = grads.mean(dim=_spatial(grads), keepdim=True)  # (B, C, 1, ...)
    return F.relu((weights * acts).sum(dim=1, keepdim=True))


def gradcampp(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """(B, C, *s) -> (B, 1, *s) map >= 0."""
    g2 = grads.pow(2)
    g3 = g2 * grads
    total = acts.sum(dim=_spatial(acts), keepdim=True)  # (B, C, 1, ...)
    alpha = torch.where(grads != 0, g2 / (2 * g2 + total * g3 + EPS), torch.zeros_like(grads))
    weights = (alpha * F.relu(grads)).sum(dim=_spatial(grads), keepdim=True)
    return F.relu((weights * acts).sum(dim=1, keepdim=True))


def hirescam(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """(B, C, *s) -> (B, 1, *s) map >= 0."""
    return F.relu((grads * acts).sum(dim=1, keepdim=True))


CAM_FUNCTIONS = {"gradcam": gradcam, "gradcampp": gradcampp, "hirescam": hirescam}


def cam_map(method: str, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Dispatch by method name (`seg.config.CAM_METHODS`)."""
    if method not in CAM_FUNCTIONS:
        raise ValueError(f"Unknown CAM method {method!r}; expected one of {', '.join(CAM_FUNCTIONS)}.")
    return CAM_FUNCTIONS[method](acts, grads)


def has_plain_cam(head: nn.Module) -> bool:
    """True for a convolution head with kernel 1 on every axis: its logits are a linear map of the features."""
    return isinstance(head, nn.Conv2d | nn.Conv3d) and all(k == 1 for k in head.kernel_size) and head.groups == 1


def plain_cam(features: torch.Tensor, head: nn.Module) -> torch.Tensor:
    """(B, C, *s) head input -> (B, K, *s): ReLU(sum_c W_kc F_c), the head's logits without bias, rectified."""
    weight = head.weight.detach().flatten(1)  # (K, C)
    return F.relu(torch.einsum("kc,bc...->bk...", weight, features))
