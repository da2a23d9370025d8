"""A random rotation and isotropic scale, one zoom factor for every axis (nnU-Net's default), as a MONAI transform.

MONAI's `RandAffined` draws a scale factor per axis; this transform draws one and builds the same affine from
MONAI's public `AffineGrid` and `Resample`: one grid for all keys, one resampling per key, as `RandAffined` does.
Imported only when training (it imports MONAI); a module-level class so that data-loader workers can pickle it.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch
from monai.transforms import AffineGrid, MapTransform, RandomizableTransform, Resample
from monai.utils import ensure_tuple_rep


class RandIsotropicAffined(RandomizableTransform, MapTransform):
    """With probability `prob`: rotate by up to `rotate_range` radians about each axis (one angle in 2D, three in
    3D) and scale every axis by one factor drawn from `scale_range`, about the patch centre; shapes are kept.

    A factor above 1 samples a larger field of view, so structures shrink (MONAI's backward mapping).
    """

    def __init__(
        self,
        keys: Sequence[Hashable],
        spatial_dims: int,
        prob: float,
        rotate_range: float,
        scale_range: tuple[float, float],
        mode: Sequence[str],
        padding_mode: str = "zeros",
    ):
        MapTransform.__init__(self, keys)
        RandomizableTransform.__init__(self, prob)
        self.spatial_dims, self.rotate_range, self.scale_range = spatial_dims, rotate_range, scale_range
        self.mode = ensure_tuple_rep(mode, len(self.keys))
        self.padding_mode = padding_mode
        self.resample = Resample()  # interpolates in float64, as RandAffined's does
        self.rotate_params: tuple[float, ...] = (0.0,) * (1 if spatial_dims == 2 else 3)
        self.scale = 1.0

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        if self._do_transform:
            angles = self.R.uniform(-self.rotate_range, self.rotate_range, len(self.rotate_params))
            self.rotate_params = tuple(float(a) for a in angles)
            self.scale = float(self.R.uniform(*self.scale_range))

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        self.randomize()
        if not self._do_transform:
            return d
        shape = d[self.keys[0]].shape[1:]  # (C, *spatial) -> spatial; all keys share it
        affine = AffineGrid(rotate_params=self.rotate_params, scale_params=(self.scale,) * self.spatial_dims)
        grid, _ = affine(spatial_size=shape)  # (dims + 1, *spatial)
        for key, mode in self.key_iterator(d, self.mode):
            d[key] = self.resample(d[key], grid, mode=mode, padding_mode=self.padding_mode)
        return d
