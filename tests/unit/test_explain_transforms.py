"""Spatial transforms of the equivariance test: exact inverses, the rescale round trip, the error measure."""

from __future__ import annotations

import math

import pytest
import torch

from seg.explain.transforms import equivariance_error, resize, spatial_transforms, unit_max


@pytest.mark.parametrize("shape", [(6, 9), (5, 7, 4)])
def test_flip_and_rot90_inverses_are_exact_also_on_non_square_planes(shape):
    x = torch.randn(2, *shape)
    transforms = [t for t in spatial_transforms(shape, ("flip", "rot90")) if t.family in ("flip", "rot90")]
    assert len(transforms) == len(shape) + math.comb(len(shape), 2)
    for t in transforms:
        moved = t.forward(x)
        if t.family == "rot90":
            assert moved.shape != x.shape  # non-square: the plane's sizes swap
        assert torch.equal(t.inverse(moved), x), t.name


def test_rot90_skips_planes_with_the_slice_axis():
    names = [t.name for t in spatial_transforms((8, 8, 5), ("rot90",), skip_axis=2)]
    assert names == ["rot90_01"]


@pytest.mark.parametrize("dims", [2, 3])
def test_rescale_round_trip_is_close_to_identity_on_smooth_maps(dims):
    shape = (24, 20, 16)[:dims]
    grid = torch.meshgrid(*[torch.linspace(-1, 1, n) for n in shape], indexing="ij")
    smooth = torch.exp(-sum(g**2 for g in grid) / 0.5)[None]  # (1, *S) Gaussian blob
    for t in spatial_transforms(shape, ("scale",), scales=(0.5, 1.5)):
        moved = t.forward(smooth)
        assert moved.shape[1:] == tuple(round(n * float(t.name[5:])) for n in shape)
        assert equivariance_error(t.inverse(moved), smooth) < 0.03, t.name


def test_equivariance_error_scale_free_and_bounded():
    a = torch.rand(5, 6)
    assert equivariance_error(a, a) == 0.0
    assert equivariance_error(unit_max(3 * a), unit_max(a)) < 1e-6  # float32 rounding only
    disjoint = torch.zeros(5, 6)
    disjoint[0, 0] = 1.0
    other = torch.zeros(5, 6)
    other[4, 5] = 2.0
    assert equivariance_error(disjoint, other) == pytest.approx(1.0)
    assert math.isnan(equivariance_error(torch.zeros(3), torch.zeros(3)))  # two zero maps: undefined, not perfect
    with pytest.raises(ValueError, match="differ"):
        equivariance_error(torch.zeros(3), torch.zeros(4))


def test_unknown_family_names_the_valid_ones():
    with pytest.raises(ValueError, match="flip"):
        spatial_transforms((4, 4), ("shear",))


def test_resize_keeps_constant_maps_constant():
    assert torch.allclose(resize(torch.full((1, 4, 6, 8), 0.3), (6, 9, 12)), torch.tensor(0.3))
