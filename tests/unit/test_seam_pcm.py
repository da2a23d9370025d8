"""SEAM's pixel correlation module (`seg.seam.pcm`), batched as training runs it."""

from __future__ import annotations

import pytest
import torch

from seg.seam.pcm import pixel_correlation


def test_pcm_dense_equals_a_window_covering_everything_and_keeps_gradients():
    torch.manual_seed(0)
    cams, features = torch.rand(2, 3, 5, 6, 4), torch.randn(2, 4, 5, 6, 4, requires_grad=True)
    dense, windowed = pixel_correlation(cams, features, None), pixel_correlation(cams, features, 13)
    assert torch.allclose(dense, windowed, atol=1e-5)
    (g,) = torch.autograd.grad(windowed.sum() + dense.square().sum(), [features])
    assert torch.isfinite(g).all() and float(g.abs().sum()) > 0
    with pytest.raises(ValueError, match="odd number"):
        pixel_correlation(cams, features, 4)
