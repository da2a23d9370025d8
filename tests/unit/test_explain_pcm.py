"""SEAM's Pixel Correlation Module on one case (as the analysis runs it) against a dense reference and on a toy image
whose answer is known."""

from __future__ import annotations

import itertools

import pytest
import torch

from seg.explain.pcm import refine_case_cams


def dense_pcm(cams: torch.Tensor, features: torch.Tensor, window: int) -> torch.Tensor:
    """Straight from the definition, voxel by voxel."""
    f = features / features.norm(dim=0, keepdim=True).clamp_min(1e-8)
    shape, r = cams.shape[1:], window // 2
    out = torch.empty_like(cams)
    for i in itertools.product(*map(range, shape)):
        num, den = torch.zeros(cams.shape[0]), 0.0
        for o in itertools.product(range(-r, r + 1), repeat=len(shape)):
            j = tuple(a + b for a, b in zip(i, o, strict=True))
            if all(0 <= v < n for v, n in zip(j, shape, strict=True)):
                a = max(float((f[(slice(None), *i)] * f[(slice(None), *j)]).sum()), 0.0)
                num += a * cams[(slice(None), *j)]
                den += a
        out[(slice(None), *i)] = num / den if den > 1e-8 else cams[(slice(None), *i)]
    return out


@pytest.mark.parametrize("shape,window", [((7, 6), 3), ((4, 5, 3), 3), ((6, 5), 5)])
def test_shifted_slices_match_the_dense_definition(shape, window):
    torch.manual_seed(0)
    cams, features = torch.rand(2, *shape), torch.randn(4, *shape)
    assert torch.allclose(refine_case_cams(cams, features, window), dense_pcm(cams, features, window), atol=1e-5)


def test_toy_two_regions_no_leak_and_known_values():
    """Left half has feature e0, right half e1 (orthogonal: zero affinity across). A CAM spike in the left half
    spreads only to left-half voxels of its window, each getting 1 / (number of left-half voxels in its window)."""
    h, w, window = 6, 8, 3
    features = torch.zeros(2, h, w)
    features[0, :, :4] = 1.0
    features[1, :, 4:] = 1.0
    cam = torch.zeros(1, h, w)
    cam[0, 2, 3] = 1.0  # on the boundary column of the left region
    out = refine_case_cams(cam, features, window)[0]
    assert out[:, 4:].abs().max() == 0  # nothing crosses into the right region
    for y, x in itertools.product(range(h), range(4)):
        left = [(y + dy, x + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if 0 <= y + dy < h and 0 <= x + dx < 4]
        expected = 1.0 / len(left) if (2, 3) in left else 0.0
        assert out[y, x].item() == pytest.approx(expected), (y, x)


def test_constant_cam_per_region_is_a_fixed_point_and_window_1_is_identity():
    features = torch.zeros(2, 5, 6, 4)
    features[0, :3] = 1.0
    features[1, 3:] = 1.0
    cam = torch.zeros(1, 5, 6, 4)
    cam[0, :3] = 0.8
    cam[0, 3:] = 0.1
    assert torch.allclose(refine_case_cams(cam, features, 5), cam, atol=1e-6)
    noisy = torch.rand(3, 5, 6, 4)
    assert torch.allclose(refine_case_cams(noisy, torch.rand(4, 5, 6, 4) + 0.1, 1), noisy)


def test_bad_window_and_shapes_are_errors():
    with pytest.raises(ValueError, match="odd"):
        refine_case_cams(torch.rand(1, 4, 4), torch.rand(2, 4, 4), 4)
    with pytest.raises(ValueError, match="differ"):
        refine_case_cams(torch.rand(1, 4, 4), torch.rand(2, 4, 5), 3)
