"""An isotropic scale for MONAI's RandAffine: one zoom factor for every axis (nnU-Net's default).

MONAI draws a scale factor per axis from `scale_range`; this grid keeps the first draw for all axes. Imported
only when training (it imports MONAI); a module-level class so that data-loader workers can pickle it.
"""

from __future__ import annotations

from typing import Any

from monai.transforms import RandAffineGrid


class IsotropicScaleGrid(RandAffineGrid):
    def randomize(self, data: Any | None = None) -> None:
        super().randomize(data)
        self.scale_params = [self.scale_params[0]] * len(self.scale_params)


def make_isotropic(rand_affined: Any) -> Any:
    """Swap the random grid of a `RandAffined` for one that ties the scale across axes; returns the transform."""
    rand_affined.rand_affine.rand_affine_grid.__class__ = IsotropicScaleGrid
    return rand_affined
