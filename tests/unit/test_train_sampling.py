"""Patches drawn from cached cases: padding, foreground oversampling, slices of 3D volumes."""

from __future__ import annotations

import numpy as np
import pytest

from seg.data.cache import CachedCase as Case
from seg.train.sampling import crop_patch, sample_patch


def test_crop_patch_pads_outside_the_volume():
    a = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    p = crop_patch(a, [-1, 2], [3, 3])
    assert p.shape == (1, 3, 3)
    assert p[0, 0].tolist() == [0, 0, 0] and p[0, 1].tolist() == [2, 3, 0]


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_foreground_patches_contain_foreground(spatial_dims):
    label = np.zeros((1, *(32,) * spatial_dims), np.uint8)
    label[(0, *(slice(20, 23),) * spatial_dims)] = 1
    case = Case("c", label.astype(np.float32), label, np.argwhere(label[0] > 0))
    rng = np.random.default_rng(0)
    for _ in range(20):
        image, lab = sample_patch(case, (12,) * spatial_dims, rng, foreground_fraction=1.0)
        assert image.shape == (1, *(12,) * spatial_dims) and lab.any()


def test_patches_pad_only_along_axes_where_the_volume_is_smaller():
    """Foreground at the corner of a (20, 9) volume, patch (12, 12): axis 0 never pads (the patch shifts inwards
    and still holds the voxel), axis 1 pads exactly the 3 voxels the volume lacks."""
    label = np.zeros((1, 20, 9), np.uint8)
    label[0, 0, 0] = 1
    case = Case("c", np.ones((1, 20, 9), np.float32), label, np.argwhere(label[0] > 0))
    rng = np.random.default_rng(0)
    for fraction in (1.0, 0.0):
        for _ in range(50):
            image, lab = sample_patch(case, (12, 12), rng, foreground_fraction=fraction)
            assert image[0].any(axis=0).sum() == 9  # all 9 columns of the volume, 3 of padding
            assert image[0].any(axis=1).all()  # no row of padding along axis 0
            if fraction:
                assert lab.any()


def test_slices_of_3d_volume_for_2d_training():
    label = np.zeros((1, 10, 12, 14), np.uint8)
    label[0, 5, 6, 7] = 1
    case = Case("c", label.astype(np.float32), label, np.argwhere(label[0] > 0))
    image, lab = sample_patch(case, (8, 8), np.random.default_rng(0), 1.0, slice_axis=2)
    assert image.shape == (1, 8, 8) and lab.sum() == 1
