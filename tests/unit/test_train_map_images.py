"""The network's maps as training logs them to MLflow: one picture per map under its `MapId.key`, a distance
metric per self-attention head in mm, each heat map on its own colour scale; 2D and 3D."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seg.models import AttentionUNet
from seg.models.maps import SELF, MapRequest
from seg.train.map_images import (
    SCALES,
    Scale,
    card_key,
    input_spacing,
    render_heat,
    render_weights,
    review_maps,
)

SIZE = (12, 16, 8)


def tiny_net(dims: int) -> AttentionUNet:
    """Gates, CBAM on the decoder, window attention at level 1 and global attention at the bottleneck."""
    torch.manual_seed(0)
    return AttentionUNet(
        spatial_dims=dims,
        in_channels=1,
        out_channels=2,
        channels=(4, 8, 8),
        strides=(2, 2),
        deep_supervision=0,
        stem_stride=1,
        self_attention={1: "window", 2: "global"},
        self_attention_heads=2,
        self_attention_window=2,
        decoder_attention="cbam",
    )


def case(dims: int) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    label = torch.zeros(1, 1, *SIZE[:dims], dtype=torch.long)
    label[(0, 0, *(slice(2, 6),) * dims)] = 1
    return torch.randn(1, 1, *SIZE[:dims]) + 2 * label, label


@pytest.mark.parametrize("dims", [2, 3])
def test_one_card_per_map_named_by_its_key_and_a_distance_per_self_attention_head(dims):
    net = tiny_net(dims).train()
    image, label = case(dims)
    review = review_maps(net, image, label, (1.0, 1.0, 1.0)[:dims], SIZE[:dims], "case_0 epoch 3")
    assert net.training  # the review puts the network back in training mode
    assert set(review.pictures) == {card_key(m) for m in net.map_ids()}
    assert {"gate_level0", "gate_level1", "spatial_dec0", "channel_dec1"} <= set(review.pictures)
    assert {"self_enc1b0_h0", "self_enc1b0_h1", "self_enc2b0_h0", "self_enc2b0_h1"} <= set(review.pictures)
    assert set(review.metrics) == {f"attention_distance/enc{i}b0/h{h}" for i in (1, 2) for h in (0, 1)}
    for rgb in review.pictures.values():
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3


@pytest.mark.parametrize("dims", [2, 3])
def test_distance_metrics_are_the_mean_over_the_cases_queries_in_mm(dims):
    net = tiny_net(dims).eval()
    image, label = case(dims)
    spacing = (0.5, 2.0, 3.0)[:dims]
    review = review_maps(net, image, label, spacing, SIZE[:dims], "t")
    with torch.no_grad():
        maps = net.outputs(image, maps=MapRequest(kinds=(SELF,), spacing=spacing)).maps
    for map_id, value in maps.items():
        key = f"attention_distance/{map_id.site}/h{map_id.head}"
        assert review.metrics[key] == pytest.approx(float(value.mean()), rel=1e-5)
        assert review.metrics[key] > 0.1  # attention spread over more than the query itself
    doubled = review_maps(net, image, label, tuple(2 * s for s in spacing), SIZE[:dims], "t")
    for key, value in review.metrics.items():
        assert doubled.metrics[key] == pytest.approx(2 * value, rel=1e-4)  # millimetres, not voxels


@pytest.mark.parametrize("dims", [2, 3])
def test_a_distance_map_is_drawn_on_its_own_scale_not_saturated_on_the_unit_one(dims):
    image, label = case(dims)
    grey, mask = image[0, 0].numpy(), label[0, 0].numpy()
    ramp = np.broadcast_to(np.linspace(0, 1, SIZE[0]).reshape(-1, *(1,) * (dims - 1)), SIZE[:dims]).copy()

    def panels(heat, scale):  # the slices, left of the colour bar, whose tick labels differ
        rgb = render_heat(grey, heat, mask, "map", scale, "t")
        return rgb[:, : int(0.55 * rgb.shape[1])]

    unit = panels(ramp, SCALES["gate"])
    assert not np.array_equal(unit, panels(np.zeros_like(ramp), SCALES["gate"]))  # the heat map is drawn
    assert np.array_equal(panels(40 * ramp, SCALES[SELF]), unit)  # 0..40 mm spans the colours as 0..1 does
    assert not np.array_equal(panels(40 * ramp, Scale("mm", 1.0)), unit)  # on [0, 1] it would saturate


def test_three_slices_in_3d_one_picture_in_2d():
    image3, label3 = case(3)
    image2, label2 = case(2)
    wide = render_heat(image3[0, 0].numpy(), image3[0, 0].numpy() * 0, label3[0, 0].numpy(), "m", SCALES["gate"], "t")
    narrow = render_heat(image2[0, 0].numpy(), image2[0, 0].numpy() * 0, label2[0, 0].numpy(), "m", SCALES["gate"], "t")
    assert wide.shape[0] == narrow.shape[0] and wide.shape[1] > 2 * narrow.shape[1]


def test_channel_weights_are_a_bar_per_channel():
    low, high = render_weights(np.full(8, 0.1), "channel weights dec0", "t"), render_weights(np.full(8, 0.9), "c", "t")
    assert low.shape == high.shape and low.shape[2] == 3
    blue = np.array([31, 119, 180])  # matplotlib's tab:blue
    assert (np.abs(high.astype(int) - blue).sum(-1) < 10).sum() > 5 * (
        np.abs(low.astype(int) - blue).sum(-1) < 10
    ).sum()


def test_the_input_spacing_leaves_out_the_slice_axis_of_a_2d_network_on_3d_data():
    assert input_spacing((0.5, 0.7, 3.0), None) == (0.5, 0.7, 3.0)
    assert input_spacing((0.5, 0.7, 3.0), 2) == (0.5, 0.7)
    assert input_spacing((0.5, 0.7, 3.0), 0) == (0.7, 3.0)
