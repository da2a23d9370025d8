"""MONAI augmentations for training patches (dict transforms on "image" and "label")."""

from __future__ import annotations

import math
from collections.abc import Sequence

from seg.config import AugmentConfig


def build_augmentation(cfg: AugmentConfig, patch_size: Sequence[int]):
    """Flips per axis, rot90 in square planes, affine (rotation + scale), intensity scale/shift, gamma, noise."""
    from monai import transforms as T

    keys = ["image", "label"]
    dims = len(patch_size)
    ts: list = []
    if cfg.affine_prob > 0:
        from seg.train.isotropic import RandIsotropicAffined

        rotate = math.radians(cfg.rotate_degrees)
        ts.append(
            RandIsotropicAffined(
                keys,
                dims,
                cfg.affine_prob,
                rotate,
                cfg.scale_range,  # one factor, all axes
                mode=("bilinear", "nearest"),
                padding_mode="zeros",
            )
        )
    if cfg.flip_prob > 0:
        ts += [T.RandFlipd(keys, prob=cfg.flip_prob, spatial_axis=a) for a in cfg.mirrored_axes(dims)]
    if cfg.rot90_prob > 0:
        planes = [(a, b) for a in range(dims) for b in range(a + 1, dims) if patch_size[a] == patch_size[b]]
        ts += [T.RandRotate90d(keys, prob=cfg.rot90_prob / len(planes), spatial_axes=p) for p in planes]
    if cfg.intensity_prob > 0:
        ts += [
            T.RandScaleIntensityd("image", factors=0.25, prob=cfg.intensity_prob),
            T.RandShiftIntensityd("image", offsets=0.1, prob=cfg.intensity_prob),
        ]
    if cfg.gamma_prob > 0:
        ts.append(T.RandAdjustContrastd("image", gamma=cfg.gamma_range, prob=cfg.gamma_prob))
    if cfg.noise_prob > 0:
        ts.append(T.RandGaussianNoised("image", std=0.1, prob=cfg.noise_prob))
    return T.Compose(ts)
