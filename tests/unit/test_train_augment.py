"""Training augmentation: MONAI's transforms as seg configures them, 2D and 3D."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seg.config import ModelConfig
from seg.data.cache import CachedCase as Case


def _affine_only(spatial_dims: int):
    from seg.config import AugmentConfig
    from seg.train.augment import build_augmentation

    cfg = AugmentConfig(
        affine_prob=1.0, scale_range=(0.8, 1.2), flip_prob=0, rot90_prob=0, intensity_prob=0, gamma_prob=0, noise_prob=0
    )
    return build_augmentation(cfg, (8,) * spatial_dims).transforms[0]


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_affine_scale_is_one_factor_for_all_axes_over_the_configured_range(spatial_dims):
    """MONAI's RandAffined draws a factor per axis; ours draws one from scale_range, and rotates about each axis."""
    import math
    import pickle

    affine = pickle.loads(pickle.dumps(_affine_only(spatial_dims)))  # picklable for loader workers
    affine.set_random_state(0)
    factors, angles = [], []
    for _ in range(200):
        affine.randomize()
        factors.append(affine.scale)
        angles += affine.rotate_params
        assert len(affine.rotate_params) == (1 if spatial_dims == 2 else 3)
    assert 0.8 <= min(factors) < 0.83 and 1.17 < max(factors) <= 1.2
    assert math.radians(14) < max(map(abs, angles)) <= math.radians(15)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_affine_keeps_a_sphere_a_sphere_in_one_resampling_like_monai_affined(spatial_dims):
    """The label of a ball keeps equal semi-axes of radius / scale; image and label match MONAI's Affined at the
    drawn parameters (bilinear image, nearest label, zeros outside)."""
    from monai.transforms import Affined

    size, radius = (48, 14) if spatial_dims == 2 else (32, 9)
    centred = np.meshgrid(*[np.arange(size) - (size - 1) / 2] * spatial_dims, indexing="ij")
    ball = torch.from_numpy((sum(c**2 for c in centred) <= radius**2)[None].astype(np.float32))  # (1, *spatial)
    image = torch.from_numpy(np.random.default_rng(0).random(ball.shape, dtype=np.float32))
    affine = _affine_only(spatial_dims)
    affine.set_random_state(1)
    for _ in range(4):
        out = affine({"image": image, "label": ball})
        points = np.argwhere(np.asarray(out["label"][0]) > 0.5).astype(float)
        semi_axes = np.sqrt((spatial_dims + 2) * np.linalg.eigvalsh(np.cov(points.T)))  # of a solid ellipsoid
        assert semi_axes.max() / semi_axes.min() < 1.05
        assert semi_axes.mean() == pytest.approx(radius / affine.scale, rel=0.04)
        monai = Affined(
            ["image", "label"],
            rotate_params=affine.rotate_params,
            scale_params=(affine.scale,) * spatial_dims,
            mode=("bilinear", "nearest"),
            padding_mode="zeros",
            dtype=np.float64,
        )
        expected = monai({"image": image, "label": ball})
        assert torch.allclose(torch.as_tensor(out["image"]), torch.as_tensor(expected["image"]), atol=1e-5)
        assert (torch.as_tensor(out["label"]) != torch.as_tensor(expected["label"])).float().mean() < 1e-3


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_mirroring_flips_only_the_configured_axes_and_rejects_missing_ones(spatial_dims):
    from seg.config import AugmentConfig, Config, ConfigError, TrainConfig
    from seg.train.augment import build_augmentation

    off = {"affine_prob": 0, "rot90_prob": 0, "intensity_prob": 0, "gamma_prob": 0, "noise_prob": 0}
    image = torch.arange(8.0**spatial_dims).reshape(1, *(8,) * spatial_dims)
    aug = build_augmentation(AugmentConfig(flip_prob=1.0, flip_axes=(1,), **off), (8,) * spatial_dims)
    out = aug({"image": image, "label": image.long()})
    assert torch.equal(torch.as_tensor(out["image"]), image.flip(2))  # spatial axis 1 only, label alike
    assert torch.equal(torch.as_tensor(out["label"]), image.long().flip(2))
    assert AugmentConfig(flip_prob=0.0).mirrored_axes(spatial_dims) == ()  # never mirrored: no axis for TTA
    assert AugmentConfig().mirrored_axes(spatial_dims) == tuple(range(spatial_dims))
    with pytest.raises(ConfigError, match="the 2D patches do not have"):
        Config(model=ModelConfig(spatial_dims=2), train=TrainConfig(augment=AugmentConfig(flip_axes=(0, 2))))
    with pytest.raises(ConfigError, match="distinct spatial axes"):
        AugmentConfig(flip_axes=(0, 0))


def test_training_patches_are_plain_tensors_after_monai_augmentation():
    """MONAI transforms return MetaTensors; one reaching the network would tax every op with metadata handling."""
    from seg.config import AugmentConfig, TrainConfig
    from seg.train.datamodule import PatchDataset

    label = np.zeros((1, 16, 16, 16), np.uint8)
    label[0, 6:9, 6:9, 6:9] = 1
    case = Case("c", np.random.rand(1, 16, 16, 16).astype(np.float32), label, np.argwhere(label[0] > 0))
    always = AugmentConfig(flip_prob=1.0, affine_prob=1.0, intensity_prob=1.0, gamma_prob=1.0, noise_prob=1.0)
    item = PatchDataset([case], (8, 8, 8), 2, TrainConfig(augment=always), None)[0]
    assert type(item["image"]) is torch.Tensor and type(item["label"]) is torch.Tensor
    assert item["image"].dtype == torch.float32 and item["label"].dtype == torch.int64
