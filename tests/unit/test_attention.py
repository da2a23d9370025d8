"""Gates and channel/spatial attention modules on their own, in 2D and 3D, with odd channel counts."""

from __future__ import annotations

import pytest
import torch

from seg.models import CBAM, SCSE, AttentionGate, MultiHeadAttentionGate, SqueezeExcitation, build_attention


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("channels", [1, 3, 5, 7])
@pytest.mark.parametrize("name", ["se", "cbam", "scse"])
def test_attention_modules_keep_shape_with_odd_channels(spatial_dims, channels, name):
    module = build_attention(name, spatial_dims, channels, reduction=4)
    x = torch.randn(2, channels, *(6,) * spatial_dims, requires_grad=True)
    y = module(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_module_classes_by_name():
    assert isinstance(build_attention("se", 3, 5), SqueezeExcitation)
    assert isinstance(build_attention("cbam", 3, 5), CBAM)
    assert isinstance(build_attention("scse", 3, 5), SCSE)
    assert isinstance(build_attention(None, 3, 5), torch.nn.Identity)


def test_unknown_module_suggests_nearest():
    with pytest.raises(ValueError, match=r"Unknown attention module 'cbma'.*Did you mean 'cbam'\?"):
        build_attention("cbma", 3, 8)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_gate_computes_on_coarse_grid_and_returns_skip_resolution(spatial_dims):
    gate = AttentionGate(spatial_dims, in_channels=5, gating_channels=7, sub_sample_factor=2)
    x = torch.randn(2, 5, *(8,) * spatial_dims)
    g = torch.randn(2, 7, *(4,) * spatial_dims)
    seen = {}
    gate.psi.register_forward_hook(lambda m, i, o: seen.update(score=o.shape))
    y, alpha = gate(x, g)
    assert seen["score"] == (2, 1, *(4,) * spatial_dims)  # attention on the gating signal's grid
    assert y.shape == x.shape
    assert alpha.shape == (2, 1, *(8,) * spatial_dims)
    assert alpha.min() >= 0 and alpha.max() <= 1


def test_gate_tap_exposes_coefficients_to_hooks():
    gate = AttentionGate(3, 4, 4)
    seen = []
    gate.tap.register_forward_hook(lambda m, i, o: seen.append(o))
    _, alpha = gate(torch.randn(1, 4, 8, 8, 8), torch.randn(1, 4, 4, 4, 4))
    assert torch.equal(seen[0], alpha)


def test_softmax_gate_peaks_at_one():
    gate = AttentionGate(2, 4, 4, mode="concatenation_softmax", sub_sample_factor=1)  # no resampling
    _, alpha = gate(torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8))
    assert alpha.max().item() == pytest.approx(1.0, abs=1e-5)


def test_residual_gate_never_blocks_the_skip():
    gate = AttentionGate(2, 4, 4, mode="concatenation_residual")
    with torch.no_grad():
        gate.psi.bias.fill_(-1e4)  # coefficients -> 0
        gate.out[0].weight.copy_(torch.eye(4).view(4, 4, 1, 1))
    x = torch.randn(1, 4, 8, 8)
    y, alpha = gate(x, torch.randn(1, 4, 4, 4))
    assert alpha.max() < 1e-6 and y.abs().sum() > 0


def test_multihead_gate_mean_of_heads():
    gate = MultiHeadAttentionGate(3, 3, 6, heads=3)
    x, g = torch.randn(1, 3, 8, 8, 8), torch.randn(1, 6, 4, 4, 4)
    y, alpha = gate(x, g)
    heads = torch.stack([h(x, g)[1] for h in gate.heads]).mean(0)
    assert y.shape == x.shape and torch.allclose(alpha, heads)


def test_gate_errors():
    with pytest.raises(ValueError, match=r"Unknown gate mode 'concat'.*Did you mean 'concatenation'"):
        AttentionGate(3, 4, 4, mode="concat")
    with pytest.raises(ValueError, match="heads >= 1"):
        MultiHeadAttentionGate(3, 4, 4, heads=0)
    with pytest.raises(ValueError, match="Unknown gate coefficients 'binary'"):
        AttentionGate(3, 4, 4, coefficients="binary")
    with pytest.raises(ValueError, match="spatial_dims must be 2 or 3, got spatial_dims=4"):
        AttentionGate(4, 4, 4)
